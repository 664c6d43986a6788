// Maintainer check (not part of npm test, which must not need kubectl): render each kustomization
// with deploy/tools/kustomize.ts and with `kubectl kustomize`, and compare the objects after
// normalizing the generated-name hash suffixes (ours differ from kustomize's by design).
//   node -r ./test/gateway.register.js deploy/tools/compare-kubectl.ts deploy/k8s/base deploy/k8s/overlays/dev deploy/k8s/overlays/gpu
import { kubectlKustomize } from './kubectl';
import { objectId, render, type K8sObject } from './kustomize';

const HASHED = /^(.*)-[a-z0-9]{10}$/;

/** Replace `<base>-<hash>` names of generated ConfigMaps/Secrets (and references to them) by `<base>-HASH`. */
function normalize(objs: K8sObject[]): Map<string, unknown> {
  const generated = new Map<string, string>();
  for (const o of objs) {
    if ((o.kind === 'ConfigMap' || o.kind === 'Secret') && HASHED.test(o.metadata.name))
      generated.set(o.metadata.name, `${HASHED.exec(o.metadata.name)![1]}-HASH`);
  }
  const out = new Map<string, unknown>();
  const fix = (v: unknown): unknown => {
    if (typeof v === 'string') return generated.get(v) ?? v;
    if (Array.isArray(v)) return v.map(fix);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fix(x)]));
    return v;
  };
  for (const o of objs) {
    const n = fix(o) as K8sObject;
    // kustomize wraps base64 at 76 columns; the API server ignores the line breaks.
    if (n.kind === 'Secret') for (const k of Object.keys(n.data ?? {})) n.data[k] = String(n.data[k]).replace(/\s+/g, '');
    out.set(objectId(n), n);
  }
  return out;
}

function diff(a: unknown, b: unknown, at: string, out: string[]): void {
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
    for (const k of keys) diff((a as any)[k], (b as any)[k], `${at}/${k}`, out);
    return;
  }
  out.push(`${at}: ours ${JSON.stringify(a)} kubectl ${JSON.stringify(b)}`);
}

let failed = false;
for (const dir of process.argv.slice(2)) {
  const ours = normalize(render(dir));
  const theirs = normalize(kubectlKustomize(dir));
  const problems: string[] = [];
  for (const id of new Set([...ours.keys(), ...theirs.keys()])) {
    if (!ours.has(id)) problems.push(`${id}: only in kubectl's output`);
    else if (!theirs.has(id)) problems.push(`${id}: only in ours`);
    else diff(ours.get(id), theirs.get(id), id, problems);
  }
  console.log(`${dir}: ${ours.size} objects, ${problems.length ? problems.length + ' difference(s)' : 'identical'}`);
  for (const p of problems) console.log(`  ${p}`);
  if (problems.length) failed = true;
}
process.exit(failed ? 1 : 0);
