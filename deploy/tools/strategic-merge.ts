// Strategic merge patch (https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/)
// as kustomize v5 applies it, for the Kubernetes types deploy/k8s patches. How a list merges is a
// property of its field path, not of its name: Kubernetes declares it on the Go type
// (k8s.io/api: `patchStrategy:"merge" patchMergeKey:"..."`, published in the OpenAPI schema as
// x-kubernetes-patch-strategy / x-kubernetes-patch-merge-key / x-kubernetes-list-map-keys). A
// Service's `spec.ports` merge on `port` (+ `protocol`), a container's `ports` on `containerPort`
// (+ `protocol`); `tolerations` and a StatefulSet's `volumeClaimTemplates` have no merge key and are
// replaced whole. Kinds without a schema here (CRDs: ScaledObject, ServiceMonitor...) get what
// kustomize gives a CRD it has no schema for: maps merge, every list is replaced.
// Behaviour checked against `kubectl kustomize` (kustomize v5.5.0): a patch's items come first, in
// patch order (merged into the originals they name), then the originals the patch does not name.

export class StrategicMergeError extends Error {}

/** A name of the TYPES table below. */
type TypeName = string;
/** A list field with merge semantics. `keys`: x-kubernetes-list-map-keys, the first being the patchMergeKey. */
interface KeyedList {
  keys: string[];
  /** Type of the items, when its own fields merge by key too. */
  item?: TypeName;
}
/** A field: a nested type, a keyed list, a merged list of scalars (patchStrategy merge, no key), or unsupported. */
type Field = { type: TypeName } | KeyedList | { set: true } | { unsupported: string };

const name = (item?: TypeName): KeyedList => ({ keys: ['name'], item });
const t = (type: TypeName): Field => ({ type });

/**
 * The merge metadata of the types on the path to every keyed list of the kinds below (k8s.io/api
 * core/v1, apps/v1, batch/v1 types.go). A field not listed is a scalar, a map, or a list without a
 * merge key (replaced whole), exactly as in those types.
 */
const TYPES: Record<TypeName, Record<string, Field>> = {
  ObjectMeta: { finalizers: { set: true }, ownerReferences: { keys: ['uid'] } },
  PodTemplateSpec: { metadata: t('ObjectMeta'), spec: t('PodSpec') },
  PodSpec: {
    containers: name('Container'),
    initContainers: name('Container'),
    ephemeralContainers: name('Container'),
    volumes: name(),
    imagePullSecrets: name(),
    hostAliases: { keys: ['ip'] },
    schedulingGates: name(),
    resourceClaims: name(),
    // list-map keys topologyKey + whenUnsatisfiable: kustomize v5.5 silently drops a patch item that
    // names only the first; refused rather than guessed.
    topologySpreadConstraints: { unsupported: 'topologySpreadConstraints (kustomize drops partially keyed items)' },
  },
  Container: { ports: { keys: ['containerPort', 'protocol'] }, env: name(), volumeMounts: { keys: ['mountPath'] }, volumeDevices: { keys: ['devicePath'] } },
  ServiceSpec: { ports: { keys: ['port', 'protocol'] } },
  DeploymentSpec: { template: t('PodTemplateSpec') },
  StatefulSetSpec: { template: t('PodTemplateSpec') },
  DaemonSetSpec: { template: t('PodTemplateSpec') },
  ReplicaSetSpec: { template: t('PodTemplateSpec') },
  JobSpec: { template: t('PodTemplateSpec') },
  JobTemplateSpec: { metadata: t('ObjectMeta'), spec: t('JobSpec') },
  CronJobSpec: { jobTemplate: t('JobTemplateSpec') },
  // The top level of each kind: metadata and spec.
  Pod: { metadata: t('ObjectMeta'), spec: t('PodSpec') },
  PodTemplate: { metadata: t('ObjectMeta'), template: t('PodTemplateSpec') },
  Service: { metadata: t('ObjectMeta'), spec: t('ServiceSpec') },
  Deployment: { metadata: t('ObjectMeta'), spec: t('DeploymentSpec') },
  StatefulSet: { metadata: t('ObjectMeta'), spec: t('StatefulSetSpec') },
  DaemonSet: { metadata: t('ObjectMeta'), spec: t('DaemonSetSpec') },
  ReplicaSet: { metadata: t('ObjectMeta'), spec: t('ReplicaSetSpec') },
  Job: { metadata: t('ObjectMeta'), spec: t('JobSpec') },
  CronJob: { metadata: t('ObjectMeta'), spec: t('CronJobSpec') },
  // Built-in kinds whose fields hold no keyed list: only metadata is typed.
  Builtin: { metadata: t('ObjectMeta') },
};

/** apiVersions of the built-in kinds kustomize has a schema for (CRDs are schemaless to it). */
const BUILTIN_GROUPS = new Set([
  'v1',
  'apps/v1',
  'batch/v1',
  'networking.k8s.io/v1',
  'autoscaling/v2',
  'autoscaling/v1',
  'policy/v1',
  'rbac.authorization.k8s.io/v1',
  'scheduling.k8s.io/v1',
  'storage.k8s.io/v1',
]);
/** Built-in kinds with keyed lists below their top level (the rest only have typed metadata). */
const KINDS: Record<string, TypeName> = {
  Pod: 'Pod',
  PodTemplate: 'PodTemplate',
  Service: 'Service',
  Deployment: 'Deployment',
  StatefulSet: 'StatefulSet',
  DaemonSet: 'DaemonSet',
  ReplicaSet: 'ReplicaSet',
  Job: 'Job',
  CronJob: 'CronJob',
};

/** The schema of an object's top level: its kind's type for built-in kinds, null (schemaless) for anything else (CRDs). */
export function rootType(apiVersion: string, kind: string): TypeName | null {
  if (!BUILTIN_GROUPS.has(apiVersion)) return null;
  return KINDS[kind] ?? 'Builtin';
}

const DIRECTIVES = new Set(['$patch']);

function fieldOf(type: TypeName | null, key: string): Field | null {
  return type ? (TYPES[type][key] ?? null) : null;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

function checkDirectives(patch: Record<string, unknown>, at: string): void {
  for (const k of Object.keys(patch)) {
    if (k.startsWith('$') && !DIRECTIVES.has(k))
      throw new StrategicMergeError(`${at}: directive '${k}' is not supported (only $patch: delete | replace | merge)`);
  }
  const p = patch.$patch;
  if (p !== undefined && p !== 'delete' && p !== 'replace' && p !== 'merge') throw new StrategicMergeError(`${at}: unknown $patch '${String(p)}'`);
}

/** true when two list items name the same element: equal on every list-map key. */
function sameItem(a: any, b: any, keys: string[]): boolean {
  return keys.every((k) => a?.[k] === b?.[k]);
}

function mergeKeyedList(base: unknown[], patch: unknown[], list: KeyedList, at: string): unknown[] {
  // Secondary list-map keys (a port's protocol): kustomize v5.5 drops a patch item that gives one
  // where the original does not (or the reverse) and orders such lists differently; refused here.
  for (const k of list.keys.slice(1)) {
    if ([...base, ...patch].some((x) => isMap(x) && x[k] !== undefined)) {
      throw new StrategicMergeError(
        `${at}: patching a list whose items set '${k}' is not supported (kustomize matches and orders them on ${list.keys.join('+')} inconsistently)`,
      );
    }
  }
  const rest = [...base];
  const head: unknown[] = [];
  for (const item of patch) {
    if (!isMap(item)) throw new StrategicMergeError(`${at}: items of this list are objects merged on ${list.keys.join('+')}`);
    checkDirectives(item, at);
    const id = `${list.keys[0]}=${String(item[list.keys[0]])}`;
    if (item[list.keys[0]] === undefined) throw new StrategicMergeError(`${at}: an item without its merge key '${list.keys[0]}'`);
    const del = item.$patch === 'delete';
    const idx = rest.findIndex((x) => sameItem(x, item, list.keys));
    if (del) {
      if (idx < 0) throw new StrategicMergeError(`${at}: $patch: delete of ${id}: no such item`);
      rest.splice(idx, 1);
    } else if (item.$patch === 'replace') throw new StrategicMergeError(`${at}: $patch: replace on a list item is not supported`);
    else if (idx >= 0) head.push(strategicMerge(rest.splice(idx, 1)[0], item, list.item ?? null, at));
    else head.push(strategicMerge(undefined, item, list.item ?? null, at));
  }
  return [...head, ...rest];
}

/**
 * Strategic merge of `patch` into `base` (a new value; base is untouched), with the field metadata
 * of `type` (a type of the table above; null = schemaless: maps merge, lists are replaced).
 * Supports `$patch: delete` (map, keyed list item), `$patch: replace` (map) and a
 * null value (removes the field). Returns undefined when the patch deletes the value.
 * @throws StrategicMergeError on other directives, keyed items without their key, or deletes of missing items.
 */
export function strategicMerge(base: unknown, patch: unknown, type: TypeName | null, at = ''): unknown {
  if (patch === null) return undefined;
  if (Array.isArray(patch)) throw new StrategicMergeError(`${at}: a list where an object was expected`);
  if (!isMap(patch)) return patch;
  checkDirectives(patch, at);
  if (patch.$patch === 'delete') return undefined;
  const replace = patch.$patch === 'replace';
  const out: Record<string, unknown> = isMap(base) && !replace ? { ...base } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch') continue;
    const f = fieldOf(type, k);
    const where = `${at}/${k}`;
    let m: unknown;
    if (v === null) m = undefined;
    else if (Array.isArray(v)) {
      if (f && 'unsupported' in f) throw new StrategicMergeError(`${where}: patching ${f.unsupported} is not supported by deploy/tools/kustomize.ts`);
      if (f && 'keys' in f) m = mergeKeyedList(Array.isArray(out[k]) ? (out[k] as unknown[]) : [], v, f, where);
      else if (f && 'set' in f && Array.isArray(out[k])) m = [...v, ...(out[k] as unknown[]).filter((x) => !v.includes(x))];
      else if (v.some((x) => isMap(x) && '$patch' in x)) throw new StrategicMergeError(`${where}: $patch inside a list without a merge key`);
      else m = v;
    } else m = strategicMerge(out[k], v, f && 'type' in f ? f.type : null, where);
    if (m === undefined) delete out[k];
    else out[k] = m;
  }
  return out;
}
