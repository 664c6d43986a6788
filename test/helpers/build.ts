// e2e tests run the built apps (node dist/...). ensureBuild() rebuilds when dist is missing or older
// than any source under apps/ and libs/, once per machine at a time (a lock file serializes the
// test files and engineers that call it together).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '../..');

function newestMtime(dir: string, exts: RegExp): number {
  let newest = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (exts.test(e.name) && !/\.(spec|int-spec|e2e-spec)\.ts$/.test(e.name)) newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return newest;
}

/** true when every entry exists and is newer than every source file. */
export function buildIsFresh(entries: string[]): boolean {
  const src = Math.max(newestMtime(path.join(ROOT, 'apps'), /\.(ts|js|lua)$/), newestMtime(path.join(ROOT, 'libs'), /\.(ts|js|lua)$/));
  return entries.every((e) => fs.existsSync(path.join(ROOT, e)) && fs.statSync(path.join(ROOT, e)).mtimeMs >= src);
}

export function ensureBuild(entries = ['dist/apps/worker/src/main.js', 'dist/apps/gateway/src/main.js']): void {
  if (process.env.DLLM_SKIP_BUILD === '1' || buildIsFresh(entries)) return;
  const cmd = 'npx tsc -p tsconfig.build.json; npx tsc-alias -p tsconfig.build.json; npm run --silent build:lua';
  try {
    execFileSync('flock', ['/tmp/dllm-farm-build.lock', 'sh', '-c', cmd], { cwd: ROOT, stdio: 'inherit' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    execFileSync('sh', ['-c', cmd], { cwd: ROOT, stdio: 'inherit' }); // no flock (macOS): unserialized
  }
  // tsc emits despite type errors in files other engineers are editing; touch the entries so a
  // stale-but-built tree does not rebuild for every test file.
  const now = new Date();
  for (const e of entries) if (fs.existsSync(path.join(ROOT, e))) fs.utimesSync(path.join(ROOT, e), now, now);
}
