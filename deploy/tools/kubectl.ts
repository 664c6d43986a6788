// `kubectl kustomize`, where kubectl is installed: the reference the renderer (kustomize.ts) is
// compared with (compare-kubectl.ts, and the fixtures of the kustomize tests). The test suite never
// needs it; without kubectl those comparisons are skipped and the expected outputs still apply.
import { execFileSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';

let found: boolean | undefined;

/** true when `kubectl` runs (checked once per process). */
export function hasKubectl(): boolean {
  if (found === undefined) {
    try {
      execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore', timeout: 20_000 });
      found = true;
    } catch {
      found = false;
    }
  }
  return found;
}

/** The objects `kubectl kustomize <dir>` renders (empty documents dropped). @throws when kubectl fails. */
export function kubectlKustomize(dir: string): any[] {
  const text = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
  return parseAllDocuments(text)
    .map((d) => d.toJS())
    .filter(Boolean);
}
