// A small kustomize renderer for the subset deploy/k8s uses, so the test suite validates the
// RENDERED overlays without a kubectl/kustomize binary. Supported kustomization.yaml fields:
//   resources           files (multi-document YAML) and directories holding a kustomization.yaml
//   namespace           set on every namespaced object (cluster-scoped kinds are left alone)
//   labels              [{pairs, includeSelectors?, includeTemplates?}]
//   patches             [{path | patch, target?}]: strategic merge (a YAML object; ./strategic-merge.ts,
//                       list merge keys per field path as Kubernetes declares them) or JSON6902 (a YAML list)
//   images              [{name, newName?, newTag?, digest?}]
//   replicas            [{name, count}]
//   configMapGenerator / secretGenerator  [{name, behavior?, literals?, envs?, files?}]
//   generatorOptions    {disableNameSuffixHash?}
// Generated ConfigMaps/Secrets get a content-hash suffix (like kustomize, so a config change rolls
// the pods) and every reference to them in pod specs is rewritten. The suffix is NOT byte-identical to
// kustomize's; everything else follows kustomize's semantics for the fields above.
// Anything else in a kustomization.yaml is an error: a silently ignored field would mean the tests
// validate something other than what `kubectl apply -k` applies.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { applyPatch, JsonPatchError, type Operation } from 'fast-json-patch';
import { parseAllDocuments } from 'yaml';
import { rootType, strategicMerge, StrategicMergeError } from './strategic-merge';

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown };
  [k: string]: any;
};

export class KustomizeError extends Error {}

const KNOWN_FIELDS = new Set([
  'apiVersion',
  'kind',
  'resources',
  'namespace',
  'labels',
  'patches',
  'images',
  'replicas',
  'configMapGenerator',
  'secretGenerator',
  'generatorOptions',
]);

const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'StorageClass',
  'PersistentVolume',
  'PriorityClass',
  'ClusterTriggerAuthentication',
  'IngressClass',
]);

/** Parse a multi-document YAML file into objects; every document must be a k8s object. */
export function readObjects(file: string): K8sObject[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new KustomizeError(`${file}: ${doc.errors[0].message}`);
    const obj = doc.toJS();
    if (obj == null) continue;
    if (typeof obj !== 'object' || Array.isArray(obj) || !obj.apiVersion || !obj.kind || !obj.metadata?.name) {
      throw new KustomizeError(`${file}: every document needs apiVersion, kind and metadata.name`);
    }
    out.push(obj as K8sObject);
  }
  return out;
}

export function objectId(o: K8sObject): string {
  return `${o.kind}/${o.metadata.namespace ? o.metadata.namespace + '/' : ''}${o.metadata.name}`;
}

interface Generated {
  kind: 'ConfigMap' | 'Secret';
  /** Name as written in manifests (before the hash suffix). */
  base: string;
}

interface Rendered {
  objects: K8sObject[];
  generated: Map<K8sObject, Generated>;
}

/** Render the kustomization in `dir` (a folder holding kustomization.yaml). */
export function render(dir: string): K8sObject[] {
  const r = renderDir(path.resolve(dir), []);
  return finalizeGenerated(r);
}

function renderDir(dir: string, stack: string[]): Rendered {
  if (stack.includes(dir)) throw new KustomizeError(`kustomization cycle: ${[...stack, dir].join(' -> ')}`);
  const kfile = path.join(dir, 'kustomization.yaml');
  if (!fs.existsSync(kfile)) throw new KustomizeError(`${dir}: no kustomization.yaml`);
  const k = parseAllDocuments(fs.readFileSync(kfile, 'utf8'))[0]?.toJS() ?? {};
  for (const key of Object.keys(k)) {
    if (!KNOWN_FIELDS.has(key)) throw new KustomizeError(`${kfile}: field '${key}' is not supported by deploy/tools/kustomize.ts`);
  }
  if (k.kind !== undefined && k.kind !== 'Kustomization') throw new KustomizeError(`${kfile}: kind must be Kustomization`);

  const objects: K8sObject[] = [];
  const generated = new Map<K8sObject, Generated>();
  const add = (o: K8sObject, where: string) => {
    if (objects.some((x) => objectId(x) === objectId(o))) throw new KustomizeError(`${where}: ${objectId(o)} is defined twice`);
    objects.push(o);
  };

  for (const res of (k.resources ?? []) as string[]) {
    const p = path.resolve(dir, res);
    if (!fs.existsSync(p)) throw new KustomizeError(`${kfile}: resource '${res}' does not exist`);
    if (fs.statSync(p).isDirectory()) {
      const sub = renderDir(p, [...stack, dir]);
      for (const o of sub.objects) {
        add(o, kfile);
        const g = sub.generated.get(o);
        if (g) generated.set(o, g);
      }
    } else {
      for (const o of readObjects(p)) add(o, p);
    }
  }

  const disableHash = !!k.generatorOptions?.disableNameSuffixHash;
  for (const [field, kind] of [
    ['configMapGenerator', 'ConfigMap'],
    ['secretGenerator', 'Secret'],
  ] as const) {
    for (const g of (k[field] ?? []) as any[]) {
      const data = generatorData(dir, g, kfile);
      const behavior = g.behavior ?? 'create';
      const existing = objects.find((o) => o.kind === kind && generated.get(o)?.base === g.name);
      const key = 'data';
      const encoded = kind === 'Secret' ? mapValues(data, (v) => Buffer.from(v).toString('base64')) : data;
      if (behavior === 'create') {
        if (existing) throw new KustomizeError(`${kfile}: ${kind} generator '${g.name}' already exists (use behavior: merge or replace)`);
        const o: K8sObject = { apiVersion: 'v1', kind, metadata: { name: g.name }, [key]: encoded };
        if (kind === 'Secret') o.type = g.type ?? 'Opaque';
        add(o, kfile);
        generated.set(o, { kind, base: g.name });
        if (disableHash) (o as any).__noHash = true; // still tracked; finalizeGenerated skips the suffix
      } else if (behavior === 'merge' || behavior === 'replace') {
        if (!existing) throw new KustomizeError(`${kfile}: ${kind} generator '${g.name}' has behavior ${behavior} but no base generator defines it`);
        existing[key] = behavior === 'merge' ? { ...(existing[key] ?? {}), ...encoded } : encoded;
      } else {
        throw new KustomizeError(`${kfile}: unknown generator behavior '${behavior}'`);
      }
    }
  }

  if (k.namespace) {
    for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  }

  for (const p of (k.patches ?? []) as any[]) applyPatchEntry(dir, kfile, p, objects);

  for (const l of (k.labels ?? []) as any[]) {
    for (const o of objects) {
      o.metadata.labels = { ...(o.metadata.labels ?? {}), ...l.pairs };
      const tmpl = podTemplate(o);
      if (l.includeSelectors || l.includeTemplates) {
        if (tmpl) tmpl.metadata = { ...(tmpl.metadata ?? {}), labels: { ...(tmpl.metadata?.labels ?? {}), ...l.pairs } };
      }
      if (l.includeSelectors) {
        if (o.spec?.selector?.matchLabels) o.spec.selector.matchLabels = { ...o.spec.selector.matchLabels, ...l.pairs };
        else if (o.kind === 'Service' && o.spec) o.spec.selector = { ...(o.spec.selector ?? {}), ...l.pairs };
      }
    }
  }

  for (const img of (k.images ?? []) as any[]) {
    let used = false;
    for (const o of objects) {
      for (const c of allContainers(o)) {
        const { repo } = splitImage(c.image ?? '');
        if (repo !== img.name) continue;
        used = true;
        const cur = splitImage(c.image);
        const repoOut = img.newName ?? cur.repo;
        if (img.digest) c.image = `${repoOut}@${img.digest}`;
        else
          c.image = `${repoOut}${img.newTag !== undefined ? ':' + img.newTag : cur.tag ? ':' + cur.tag : ''}${cur.digest && img.newTag === undefined ? '@' + cur.digest : ''}`;
      }
    }
    if (!used) throw new KustomizeError(`${kfile}: images entry '${img.name}' matches no container`);
  }

  for (const r of (k.replicas ?? []) as any[]) {
    const targets = objects.filter((o) => o.metadata.name === r.name && ['Deployment', 'StatefulSet', 'ReplicaSet'].includes(o.kind));
    if (!targets.length) throw new KustomizeError(`${kfile}: replicas entry '${r.name}' matches no workload`);
    for (const t of targets) t.spec.replicas = r.count;
  }

  return { objects, generated };
}

function mapValues(m: Record<string, string>, f: (v: string) => string): Record<string, string> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, f(v)]));
}

function generatorData(dir: string, g: any, kfile: string): Record<string, string> {
  if (!g.name) throw new KustomizeError(`${kfile}: a generator needs a name`);
  const out: Record<string, string> = {};
  for (const lit of (g.literals ?? []) as string[]) {
    const eq = lit.indexOf('=');
    if (eq <= 0) throw new KustomizeError(`${kfile}: literal '${lit}' is not KEY=VALUE`);
    out[lit.slice(0, eq)] = lit.slice(eq + 1);
  }
  for (const env of (g.envs ?? []) as string[]) {
    const file = path.resolve(dir, env);
    if (!fs.existsSync(file)) throw new KustomizeError(`${kfile}: env file '${env}' does not exist`);
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const t = line.trim();
      if (!t || t.startsWith('#')) continue;
      const eq = t.indexOf('=');
      if (eq <= 0) throw new KustomizeError(`${file}: line '${t}' is not KEY=VALUE`);
      out[t.slice(0, eq)] = t.slice(eq + 1);
    }
  }
  for (const f of (g.files ?? []) as string[]) {
    const eq = f.indexOf('=');
    const [key, rel] = eq > 0 ? [f.slice(0, eq), f.slice(eq + 1)] : [path.basename(f), f];
    const file = path.resolve(dir, rel);
    if (!fs.existsSync(file)) throw new KustomizeError(`${kfile}: file '${rel}' does not exist`);
    out[key] = fs.readFileSync(file, 'utf8');
  }
  return out;
}

function applyPatchEntry(dir: string, kfile: string, p: any, objects: K8sObject[]): void {
  const text = p.path ? fs.readFileSync(path.resolve(dir, p.path), 'utf8') : p.patch;
  if (typeof text !== 'string') throw new KustomizeError(`${kfile}: a patch needs path or patch`);
  const docs = parseAllDocuments(text).map((d) => d.toJS());
  const where = p.path ? path.resolve(dir, p.path) : kfile;
  if (Array.isArray(docs[0])) {
    // JSON6902: needs a target.
    if (!p.target) throw new KustomizeError(`${where}: a JSON6902 patch needs a target`);
    const targets = objects.filter((o) => matchesTarget(o, p.target));
    if (!targets.length) throw new KustomizeError(`${where}: patch target ${JSON.stringify(p.target)} matches nothing`);
    for (const t of targets) applyJson6902(t, docs[0], where);
    return;
  }
  for (const doc of docs) {
    if (!doc) continue;
    const target = p.target ?? { kind: doc.kind, name: doc.metadata?.name };
    const targets = objects.filter((o) => matchesTarget(o, target));
    if (!targets.length) throw new KustomizeError(`${where}: patch for ${target.kind}/${target.name} matches nothing`);
    for (const t of targets) {
      if (doc.$patch === 'delete') {
        objects.splice(objects.indexOf(t), 1);
        continue;
      }
      const patch = { ...doc, metadata: { ...(doc.metadata ?? {}), name: t.metadata.name, namespace: t.metadata.namespace } };
      let merged: unknown;
      try {
        merged = strategicMerge(t, patch, rootType(t.apiVersion, t.kind));
      } catch (e) {
        if (e instanceof StrategicMergeError) throw new KustomizeError(`${where}: ${objectId(t)}${e.message}`);
        throw e;
      }
      for (const key of Object.keys(t)) delete (t as any)[key];
      Object.assign(t, merged);
    }
  }
}

function matchesTarget(o: K8sObject, t: any): boolean {
  if (t.kind && t.kind !== o.kind) return false;
  if (t.name && !new RegExp(`^(?:${t.name})$`).test(o.metadata.name)) return false;
  if (t.labelSelector) {
    for (const pair of String(t.labelSelector).split(',')) {
      const [k, v] = pair.split('=');
      if (o.metadata.labels?.[k.trim()] !== v?.trim()) return false;
    }
  }
  return true;
}

/**
 * Applies a JSON6902 patch (RFC 6902: add, remove, replace, move, copy, test) to `obj` in place,
 * with fast-json-patch, validating every operation first (a missing path or a failed `test` is an
 * error, as in kustomize).
 * @throws KustomizeError naming `where`, the operation's index, op and path.
 */
export function applyJson6902(obj: object, ops: unknown, where: string): void {
  if (!Array.isArray(ops)) throw new KustomizeError(`${where}: a JSON6902 patch is a list of operations`);
  try {
    applyPatch(obj, ops as Operation[], true, true);
  } catch (e) {
    if (!(e instanceof JsonPatchError)) throw e;
    const op = e.operation as Partial<Operation> | undefined;
    throw new KustomizeError(`${where}: JSON6902 operation ${e.index ?? '?'} (${op?.op ?? '?'} ${op?.path ?? '?'}): ${e.name}: ${e.message.split('\n')[0]}`);
  }
}

export function podTemplate(o: K8sObject): any | undefined {
  if (['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].includes(o.kind)) return o.spec?.template;
  if (o.kind === 'CronJob') return o.spec?.jobTemplate?.spec?.template;
  return undefined;
}

export function podSpec(o: K8sObject): any | undefined {
  if (o.kind === 'Pod') return o.spec;
  return podTemplate(o)?.spec;
}

export function allContainers(o: K8sObject): any[] {
  const s = podSpec(o);
  if (!s) return [];
  return [...(s.initContainers ?? []), ...(s.containers ?? [])];
}

export function splitImage(image: string): { repo: string; tag?: string; digest?: string } {
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) return { repo: rest.slice(0, colon), tag: rest.slice(colon + 1), digest };
  return { repo: rest, digest };
}

/** Stable JSON (sorted keys) for hashing. */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => JSON.stringify(k) + ':' + stable((v as any)[k]))
      .join(',')}}`;
  return JSON.stringify(v);
}

function finalizeGenerated(r: Rendered): K8sObject[] {
  const renames = new Map<string, string>(); // `${kind}/${ns}/${base}` -> new name
  for (const o of r.objects) {
    const g = r.generated.get(o);
    if (!g) continue;
    const noHash = (o as any).__noHash;
    delete (o as any).__noHash;
    if (noHash) continue;
    const h = createHash('sha256')
      .update(stable({ kind: o.kind, name: g.base, data: o.data, type: o.type }))
      .digest('hex')
      .slice(0, 10);
    const name = `${g.base}-${h}`;
    renames.set(`${o.kind}/${o.metadata.namespace ?? ''}/${g.base}`, name);
    o.metadata.name = name;
  }
  const rename = (kind: string, ns: string | undefined, name: string) => renames.get(`${kind}/${ns ?? ''}/${name}`) ?? name;
  for (const o of r.objects) {
    const ns = o.metadata.namespace;
    const spec = podSpec(o);
    if (!spec) continue;
    for (const c of allContainers(o)) {
      for (const ef of c.envFrom ?? []) {
        if (ef.configMapRef?.name) ef.configMapRef.name = rename('ConfigMap', ns, ef.configMapRef.name);
        if (ef.secretRef?.name) ef.secretRef.name = rename('Secret', ns, ef.secretRef.name);
      }
      for (const e of c.env ?? []) {
        const vf = e.valueFrom;
        if (vf?.configMapKeyRef?.name) vf.configMapKeyRef.name = rename('ConfigMap', ns, vf.configMapKeyRef.name);
        if (vf?.secretKeyRef?.name) vf.secretKeyRef.name = rename('Secret', ns, vf.secretKeyRef.name);
      }
    }
    for (const v of spec.volumes ?? []) {
      if (v.configMap?.name) v.configMap.name = rename('ConfigMap', ns, v.configMap.name);
      if (v.secret?.secretName) v.secret.secretName = rename('Secret', ns, v.secret.secretName);
      for (const src of v.projected?.sources ?? []) {
        if (src.configMap?.name) src.configMap.name = rename('ConfigMap', ns, src.configMap.name);
        if (src.secret?.name) src.secret.name = rename('Secret', ns, src.secret.name);
      }
    }
  }
  return r.objects;
}
