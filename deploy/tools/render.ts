// Print the rendered manifests of a kustomization (what `kubectl kustomize <dir>` prints, for the
// subset deploy/tools/kustomize.ts supports) and, with --check, the validation report.
//   node -r ./test/gateway.register.js deploy/tools/render.ts deploy/k8s/overlays/dev [--check]
import { stringify } from 'yaml';
import { render } from './kustomize';
import type * as Validate from './validate';

const args = process.argv.slice(2);
const dir = args.find((a) => !a.startsWith('--'));
if (!dir) {
  console.error('usage: render.ts <kustomization dir> [--check]');
  process.exit(2);
}
const objects = render(dir);
if (args.includes('--check')) {
  // Loaded lazily: rendering alone needs no schema packages.
  const { validateAll } = require('./validate') as typeof Validate;
  const problems = validateAll(objects);
  for (const p of problems) console.error(`${p.object}: ${p.rule}: ${p.message}`);
  console.error(problems.length ? `${problems.length} problem(s)` : `${objects.length} objects, no problems`);
  process.exit(problems.length ? 1 : 0);
}
process.stdout.write(objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n'));
