// Offline validation of rendered manifests: the Kubernetes / KEDA / Prometheus Operator schemas
// (kubernetes-models), then invariants whose violation is a real outage or a stuck rollout. Every
// rule has a test in deploy/k8s/manifests.spec.ts that breaks a manifest and expects the rule to fire.
import { objectId, podSpec, podTemplate, splitImage, type K8sObject } from './kustomize';
import { loadAppFacts, type AppFacts, type AppName } from './app-facts';
import { preloadSchemas, schemaProblems } from './schemas';
import { QUEUES, catalogue, queueName, type QueueKind } from '@dllm/contracts';

const QUEUE_KINDS = Object.keys(QUEUES) as QueueKind[];
/** Job kinds whose queue is per model: a worker pool consumes queueName(kind, its model) for each. */
const PER_MODEL_KINDS = Object.values(catalogue as Record<string, { kind: QueueKind; perModel: boolean }>)
  .filter((d) => d.perModel)
  .map((d) => d.kind);

export interface Problem {
  object: string;
  rule: Rule;
  message: string;
}

export type Rule =
  | 'schema'
  | 'image-pinned'
  | 'resources'
  | 'probes'
  | 'probe-target'
  | 'grace-period'
  | 'config-ref'
  | 'config-value'
  | 'pdb'
  | 'service'
  | 'ingress'
  | 'monitoring'
  | 'autoscaling'
  | 'gpu'
  | 'redis'
  | 'volume'
  | 'security';

/** Component label -> the app a container runs (the first container of the pod). */
const COMPONENT_APP: Record<string, AppName> = { gateway: 'gateway', worker: 'worker' };
const COMPONENT_LABEL = 'app.kubernetes.io/component';
/** Margin between the grace period and preStop + drain: SIGKILL must never cut a drain short. */
export const GRACE_MARGIN_SECONDS = 10;
/** Largest share of a worker's memory limit the KV pool may take. */
export const KV_POOL_SHARE = 0.6;

export function validateAll(objects: K8sObject[], facts: AppFacts = loadAppFacts()): Problem[] {
  const problems: Problem[] = [];
  const report = (o: K8sObject | string, rule: Rule, message: string) => problems.push({ object: typeof o === 'string' ? o : objectId(o), rule, message });

  preloadSchemas(objects);
  for (const o of objects) for (const msg of schemaProblems(o)) report(o, 'schema', msg);

  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
  const find = (kind: string, ns: string | undefined, name: string) =>
    objects.find((o) => o.kind === kind && o.metadata.name === name && (o.metadata.namespace ?? '') === (ns ?? ''));
  const workloads = objects.filter((o) => podSpec(o) && o.kind !== 'Pod');
  // One-off Pods (the model loader) get the image/resources/refs/security rules, not probes or PDBs.
  const podOwners = objects.filter((o) => podSpec(o));

  for (const w of podOwners) {
    const spec = podSpec(w);
    const ns = w.metadata.namespace;
    const oneOff = w.kind === 'Pod';
    const labels: Record<string, string> = (oneOff ? w.metadata.labels : podTemplate(w)?.metadata?.labels) ?? {};
    const app = COMPONENT_APP[labels[COMPONENT_LABEL]];
    const containers: any[] = spec.containers ?? [];
    const all: any[] = [...(spec.initContainers ?? []), ...containers];

    // images pinned
    for (const c of all) {
      const { tag, digest } = splitImage(c.image ?? '');
      if (!c.image) report(w, 'image-pinned', `container ${c.name} has no image`);
      else if (!digest && (!tag || tag === 'latest'))
        report(w, 'image-pinned', `container ${c.name}: image ${c.image} is not pinned (a tag other than latest, or a digest)`);
    }

    // resources
    for (const c of all) {
      const r = c.resources ?? {};
      for (const res of ['cpu', 'memory']) {
        if (r.requests?.[res] === undefined) report(w, 'resources', `container ${c.name} has no ${res} request`);
        if (r.limits?.[res] === undefined) report(w, 'resources', `container ${c.name} has no ${res} limit`);
        if (r.requests?.[res] !== undefined && r.limits?.[res] !== undefined && quantity(r.requests[res]) > quantity(r.limits[res])) {
          report(w, 'resources', `container ${c.name}: ${res} request ${r.requests[res]} is above its limit ${r.limits[res]}`);
        }
      }
    }

    // probes (long-running workloads only)
    for (const c of oneOff ? [] : containers) {
      if (!c.livenessProbe) report(w, 'probes', `container ${c.name} has no livenessProbe`);
      if (!c.readinessProbe) report(w, 'probes', `container ${c.name} has no readinessProbe`);
      if (app === 'worker' && !c.startupProbe) report(w, 'probes', `container ${c.name}: a worker loads a model at start and needs a startupProbe`);
      for (const kind of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
        const p = c[kind];
        const port = p?.httpGet?.port ?? p?.tcpSocket?.port;
        if (port === undefined) continue;
        const cp = (c.ports ?? []).find((x: any) => x.name === port || x.containerPort === port);
        if (!cp) report(w, 'probe-target', `container ${c.name}: ${kind} port ${port} is not a port of the container`);
        if (app && c === containers[0]) {
          const listen = effectivePort(w, c, app, objects, facts);
          if (cp && listen !== undefined && cp.containerPort !== listen) {
            report(
              w,
              'probe-target',
              `container ${c.name}: ${kind} goes to port ${cp.containerPort} but the ${app} listens on ${listen} (${facts.apps[app].portVar})`,
            );
          }
          const routes = facts.apps[app].routes;
          if (p.httpGet && !routes.has(stripQuery(p.httpGet.path ?? '/'))) {
            report(
              w,
              'probe-target',
              `container ${c.name}: ${kind} path ${p.httpGet.path} is not served by the ${app} (routes in ${facts.apps[app].routesFrom}: ${[...routes].sort().join(', ') || 'none found'})`,
            );
          }
        }
      }
      if (app && c === containers[0]) {
        const paths = new Set(['livenessProbe', 'readinessProbe'].map((k) => c[k]?.httpGet?.path));
        if (c.livenessProbe?.httpGet && c.readinessProbe?.httpGet && paths.size === 1 && facts.apps[app].routes.has('/readyz')) {
          report(
            w,
            'probes',
            `container ${c.name}: liveness and readiness use the same path; readiness should be /readyz (dependencies), liveness /healthz (process)`,
          );
        }
      }
    }

    // config refs (Secrets, ConfigMaps, PVCs) exist
    const ref = (kind: 'Secret' | 'ConfigMap', name: string, key: string | undefined, optional: boolean | undefined, where: string) => {
      if (optional) return;
      const target = find(kind, ns, name);
      if (!target) report(w, 'config-ref', `${where} references ${kind} ${name}, which is not in the manifests`);
      else if (key !== undefined && !(key in (target.data ?? {})) && !(key in (target.stringData ?? {})))
        report(w, 'config-ref', `${where} references key ${key} of ${kind} ${name}, which has no such key`);
    };
    for (const c of all) {
      for (const ef of c.envFrom ?? []) {
        if (ef.secretRef) ref('Secret', ef.secretRef.name, undefined, ef.secretRef.optional, `container ${c.name} envFrom`);
        if (ef.configMapRef) ref('ConfigMap', ef.configMapRef.name, undefined, ef.configMapRef.optional, `container ${c.name} envFrom`);
      }
      for (const e of c.env ?? []) {
        const s = e.valueFrom?.secretKeyRef;
        const m = e.valueFrom?.configMapKeyRef;
        if (s) ref('Secret', s.name, s.key, s.optional, `container ${c.name} env ${e.name}`);
        if (m) ref('ConfigMap', m.name, m.key, m.optional, `container ${c.name} env ${e.name}`);
      }
    }
    for (const s of spec.imagePullSecrets ?? []) ref('Secret', s.name, undefined, false, 'imagePullSecrets');
    const claimTemplates = new Set((w.spec?.volumeClaimTemplates ?? []).map((t: any) => t.metadata?.name));
    const volumeNames = new Set<string>([...claimTemplates] as string[]);
    for (const v of spec.volumes ?? []) {
      volumeNames.add(v.name);
      if (v.secret) ref('Secret', v.secret.secretName, undefined, v.secret.optional, `volume ${v.name}`);
      if (v.configMap) ref('ConfigMap', v.configMap.name, undefined, v.configMap.optional, `volume ${v.name}`);
      if (v.persistentVolumeClaim && !find('PersistentVolumeClaim', ns, v.persistentVolumeClaim.claimName)) {
        report(w, 'volume', `volume ${v.name} claims PersistentVolumeClaim ${v.persistentVolumeClaim.claimName}, which is not in the manifests`);
      }
    }
    for (const c of all) {
      for (const m of c.volumeMounts ?? [])
        if (!volumeNames.has(m.name)) report(w, 'volume', `container ${c.name} mounts volume ${m.name}, which the pod does not define`);
    }

    // config values: every env var the app reads is checked with libs/config's own validator
    if (app && containers[0]) {
      const envOf = effectiveEnv(w, containers[0], objects);
      for (const [name, value] of Object.entries(envOf)) {
        const spec = facts.env[name];
        if (!spec) continue;
        const err = spec.validate(value);
        if (err) report(w, 'config-value', `container ${containers[0].name}: ${name}='${value}' is rejected by libs/config: ${err}`);
      }
      // REDIS_URL pointing at an in-cluster Service: that Service and port must be in the manifests
      const redisUrl = envOf.REDIS_URL;
      if (redisUrl) {
        try {
          const u = new URL(redisUrl);
          const m = /^([a-z0-9-]+)(?:\.([a-z0-9-]+))?(?:\.svc(?:\.cluster\.local)?)?$/.exec(u.hostname);
          const inCluster = m && (u.hostname.includes('.svc') || !u.hostname.includes('.'));
          if (m && inCluster) {
            const svc = find('Service', m[2] ?? ns, m[1]);
            const port = Number(u.port || 6379);
            if (!svc) report(w, 'config-value', `REDIS_URL host ${u.hostname} names Service ${m[1]} in namespace ${m[2] ?? ns}, which is not in the manifests`);
            else if (!(svc.spec?.ports ?? []).some((p: any) => p.port === port))
              report(w, 'config-value', `REDIS_URL port ${port} is not a port of Service ${m[1]}`);
          }
        } catch {
          /* an invalid URL is reported by libs/config's validator above */
        }
      }
      if (app === 'worker') {
        // The engine's KV pool lives in process memory (libs/engine PageMemory): it must fit under the
        // memory limit with room for the model weights, onnxruntime's arenas and the JS heap.
        const kv = Number(envOf.KV_POOL_BYTES ?? facts.env.KV_POOL_BYTES?.default ?? 0);
        const mem = quantity(containers[0].resources?.limits?.memory ?? '0');
        if (mem && kv > KV_POOL_SHARE * mem) {
          report(
            w,
            'resources',
            `KV_POOL_BYTES ${kv} is above ${KV_POOL_SHARE * 100}% of the ${containers[0].resources.limits.memory} memory limit: the worker is OOM-killed when the pool fills`,
          );
        }
        const models = modelNames(envOf, facts);
        const wm = envOf.WORKER_MODEL;
        if (wm && !models.includes(wm)) report(w, 'config-value', `WORKER_MODEL '${wm}' is not one of MODELS (${models.join(', ')})`);
        const provider = envOf.WORKER_EXECUTION_PROVIDER ?? facts.env.WORKER_EXECUTION_PROVIDER?.default;
        const gpus = containers[0].resources?.limits?.['nvidia.com/gpu'];
        if (provider === 'cuda' && !gpus) report(w, 'gpu', `WORKER_EXECUTION_PROVIDER=cuda but the container requests no nvidia.com/gpu`);
        if (provider === 'cuda' && !/cuda/.test(containers[0].image ?? ''))
          report(w, 'gpu', `WORKER_EXECUTION_PROVIDER=cuda but image ${containers[0].image} is not a CUDA image`);
        if (gpus && provider !== 'cuda')
          report(w, 'gpu', `the container holds ${gpus} GPU(s) but WORKER_EXECUTION_PROVIDER is ${provider ?? 'unset'}: the GPU would sit idle`);
      }
    }

    // grace period above preStop + drain (+ the longest job timeout the config knows)
    const grace = spec.terminationGracePeriodSeconds ?? 30;
    for (const c of containers) {
      const preStop = preStopSeconds(c);
      let need = preStop;
      const why: string[] = [`preStop ${preStop}s`];
      if (app) {
        const envOf = effectiveEnv(w, c, objects);
        const drainMs = Number(envOf.WORKER_DRAIN_TIMEOUT_MS ?? facts.env.WORKER_DRAIN_TIMEOUT_MS?.default ?? 0);
        if (app === 'worker') {
          need += drainMs / 1000;
          why.push(`WORKER_DRAIN_TIMEOUT_MS ${drainMs / 1000}s`);
          for (const t of facts.jobTimeoutVars) {
            const v = Number(envOf[t.name] ?? facts.env[t.name]?.default ?? 0) * t.secondsPerUnit;
            if (v > need - preStop) {
              need = preStop + v;
              why.push(`${t.name} ${v}s`);
            }
          }
        }
      }
      if (grace < need + GRACE_MARGIN_SECONDS) {
        report(
          w,
          'grace-period',
          `terminationGracePeriodSeconds ${grace} must be at least ${need + GRACE_MARGIN_SECONDS} (${why.join(' + ')} + ${GRACE_MARGIN_SECONDS}s margin): SIGKILL would cut the drain short and jobs would stall`,
        );
      }
    }

    // GPU scheduling
    for (const c of containers) {
      const req = c.resources?.requests?.['nvidia.com/gpu'];
      const lim = c.resources?.limits?.['nvidia.com/gpu'];
      if (req !== undefined && lim === undefined)
        report(w, 'gpu', `container ${c.name} requests nvidia.com/gpu without a limit (extended resources need a limit)`);
      if (req !== undefined && lim !== undefined && String(req) !== String(lim))
        report(w, 'gpu', `container ${c.name}: nvidia.com/gpu request ${req} != limit ${lim}`);
      if (lim !== undefined) {
        const tolerates = (spec.tolerations ?? []).some((t: any) => t.key === 'nvidia.com/gpu' || (t.operator === 'Exists' && !t.key));
        const pinned =
          Object.keys(spec.nodeSelector ?? {}).some((k) => k.startsWith('nvidia.com/')) ||
          JSON.stringify(spec.affinity?.nodeAffinity ?? {}).includes('nvidia.com/');
        if (!tolerates) report(w, 'gpu', `container ${c.name} needs a GPU but the pod does not tolerate the nvidia.com/gpu taint of GPU nodes`);
        if (!pinned) report(w, 'gpu', `container ${c.name} needs a GPU but the pod has no nvidia.com/* nodeSelector or node affinity`);
      }
    }

    // security
    for (const c of all) {
      const nonRoot = c.securityContext?.runAsNonRoot ?? spec.securityContext?.runAsNonRoot;
      const uid = c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser;
      if (nonRoot !== true) report(w, 'security', `container ${c.name} may run as root (set runAsNonRoot: true)`);
      if (uid === 0) report(w, 'security', `container ${c.name} runs as uid 0`);
      if (c.securityContext?.privileged) report(w, 'security', `container ${c.name} is privileged`);
    }
  }

  // PodDisruptionBudgets: each selects pods, no pod is covered twice, every multi-pod workload has one
  const pdbs = byKind('PodDisruptionBudget');
  const coveredBy = new Map<K8sObject, K8sObject[]>();
  for (const pdb of pdbs) {
    const sel = pdb.spec?.selector;
    const hits = workloads.filter((w) => sameNs(w, pdb) && selects(sel, podTemplate(w)?.metadata?.labels));
    if (!hits.length) report(pdb, 'pdb', `selector ${JSON.stringify(sel?.matchLabels ?? sel)} matches no workload's pods: it protects nothing`);
    for (const h of hits) coveredBy.set(h, [...(coveredBy.get(h) ?? []), pdb]);
    if (pdb.spec?.minAvailable !== undefined && pdb.spec?.maxUnavailable !== undefined) report(pdb, 'pdb', 'set minAvailable or maxUnavailable, not both');
  }
  for (const w of workloads) {
    const list = coveredBy.get(w) ?? [];
    if (list.length > 1)
      report(w, 'pdb', `pods are selected by ${list.length} PodDisruptionBudgets (${list.map((p) => p.metadata.name).join(', ')}): evictions fail`);
    const scaled =
      byKind('ScaledObject').some((s) => s.spec?.scaleTargetRef?.name === w.metadata.name) ||
      byKind('HorizontalPodAutoscaler').some((h) => h.spec?.scaleTargetRef?.name === w.metadata.name);
    if (w.kind === 'Deployment' && (scaled || (w.spec?.replicas ?? 1) > 1) && !list.length)
      report(w, 'pdb', 'a multi-replica Deployment has no PodDisruptionBudget: a node drain may evict all its pods at once');
    for (const pdb of list) {
      const replicas = w.spec?.replicas ?? 1;
      if (!scaled && pdb.spec?.minAvailable !== undefined && typeof pdb.spec.minAvailable === 'number' && pdb.spec.minAvailable >= replicas) {
        report(
          pdb,
          'pdb',
          `minAvailable ${pdb.spec.minAvailable} with ${replicas} replica(s) of ${w.metadata.name}: no pod can ever be evicted, node drains hang`,
        );
      }
    }
  }

  // Services select pods and name ports the pods have
  for (const svc of byKind('Service')) {
    const sel = svc.spec?.selector;
    if (!sel) continue;
    const hits = workloads.filter((w) => sameNs(w, svc) && matchLabels(sel, podTemplate(w)?.metadata?.labels));
    if (!hits.length) {
      report(svc, 'service', `selector ${JSON.stringify(sel)} matches no pods`);
      continue;
    }
    for (const p of svc.spec?.ports ?? []) {
      const tp = p.targetPort ?? p.port;
      for (const h of hits) {
        const ok = (podSpec(h).containers ?? []).some((c: any) => (c.ports ?? []).some((cp: any) => cp.name === tp || cp.containerPort === tp));
        if (!ok) report(svc, 'service', `port ${p.name ?? p.port}: targetPort ${tp} is not a container port of ${h.metadata.name}`);
      }
    }
  }

  // Ingress backends exist; the proxy does not cut synchronous completions short
  const gatewayTimeouts = workloads
    .filter((w) => podTemplate(w)?.metadata?.labels?.[COMPONENT_LABEL] === 'gateway' && podSpec(w).containers?.[0])
    .map((w) => Number(effectiveEnv(w, podSpec(w).containers[0], objects).REQUEST_TIMEOUT_MS ?? facts.env.REQUEST_TIMEOUT_MS?.default ?? 0) / 1000);
  const requestTimeout = Math.max(0, ...gatewayTimeouts);
  for (const ing of byKind('Ingress')) {
    const readTimeout = ing.metadata.annotations?.['nginx.ingress.kubernetes.io/proxy-read-timeout'];
    if (requestTimeout && (readTimeout === undefined || Number(readTimeout) <= requestTimeout)) {
      report(
        ing,
        'ingress',
        `proxy-read-timeout ${readTimeout ?? '60 (nginx default)'}s is not above the gateway's REQUEST_TIMEOUT_MS (${requestTimeout}s): the proxy answers 504 while the job is still running`,
      );
    }
    if (ing.metadata.annotations?.['nginx.ingress.kubernetes.io/proxy-buffering'] !== 'off') {
      report(ing, 'ingress', 'proxy-buffering is not off: streamed completions (SSE, one event per block) arrive in bursts or only at the end');
    }
    for (const rule of ing.spec?.rules ?? []) {
      for (const p of rule.http?.paths ?? []) {
        const b = p.backend?.service;
        if (!b) continue;
        const svc = find('Service', ing.metadata.namespace, b.name);
        if (!svc) report(ing, 'ingress', `backend Service ${b.name} is not in the manifests`);
        else if (!(svc.spec?.ports ?? []).some((sp: any) => (b.port?.name !== undefined ? sp.name === b.port.name : sp.port === b.port?.number))) {
          report(ing, 'ingress', `backend Service ${b.name} has no port ${b.port?.name ?? b.port?.number}`);
        }
      }
    }
    for (const t of ing.spec?.tls ?? []) {
      const issued = Object.keys(ing.metadata.annotations ?? {}).some((a) => a.startsWith('cert-manager.io/'));
      if (t.secretName && !issued && !find('Secret', ing.metadata.namespace, t.secretName))
        report(ing, 'config-ref', `TLS Secret ${t.secretName} is not in the manifests and no cert-manager annotation issues it`);
    }
  }

  // ServiceMonitors select Services and name their ports; paths are served
  for (const sm of byKind('ServiceMonitor')) {
    const svcs = byKind('Service').filter((s) => sameNs(s, sm) && selects(sm.spec?.selector, s.metadata.labels));
    if (!svcs.length) report(sm, 'monitoring', `selector matches no Service: nothing is scraped`);
    for (const ep of sm.spec?.endpoints ?? []) {
      for (const s of svcs) {
        if (ep.port && !(s.spec?.ports ?? []).some((p: any) => p.name === ep.port))
          report(sm, 'monitoring', `endpoint port ${ep.port} is not a named port of Service ${s.metadata.name}`);
        const app = COMPONENT_APP[s.metadata.labels?.[COMPONENT_LABEL] ?? ''];
        if (app && !facts.apps[app].routes.has(ep.path ?? '/metrics')) report(sm, 'monitoring', `path ${ep.path ?? '/metrics'} is not served by the ${app}`);
      }
    }
  }

  // Autoscaling: targets exist, one autoscaler per target, queries name real metrics and the pool's own queue
  const targets = new Map<string, string[]>();
  for (const a of [...byKind('ScaledObject'), ...byKind('HorizontalPodAutoscaler')]) {
    const ref = a.spec?.scaleTargetRef;
    const kind = ref?.kind ?? 'Deployment';
    const w = find(kind, a.metadata.namespace, ref?.name);
    if (!w) {
      report(a, 'autoscaling', `scaleTargetRef ${kind} ${ref?.name} is not in the manifests`);
      continue;
    }
    const key = objectId(w);
    targets.set(key, [...(targets.get(key) ?? []), objectId(a)]);
    if (w.spec?.replicas !== undefined)
      report(
        a,
        'autoscaling',
        `target ${w.metadata.name} sets spec.replicas: every kubectl apply resets the count the ${a.kind === 'ScaledObject' ? 'KEDA' : 'HPA'} autoscaler chose`,
      );
    if (a.kind !== 'ScaledObject') continue;
    const wEnv = podSpec(w)?.containers?.[0] ? effectiveEnv(w, podSpec(w).containers[0], objects) : {};
    const model = wEnv.WORKER_MODEL || modelNames(wEnv, facts)[0];
    for (const t of a.spec?.triggers ?? []) {
      if (t.type !== 'prometheus') continue;
      const q: string = t.metadata?.query ?? '';
      for (const m of q.matchAll(/\b(dllm_[a-z0-9_]+)/g)) {
        const base = m[1].replace(/_(bucket|sum|count|total)$/, '');
        if (!facts.metrics.has(m[1]) && !facts.metrics.has(base))
          report(
            a,
            'autoscaling',
            `trigger ${t.name ?? t.type}: metric ${m[1]} is not exposed by any app (apps/, libs/): the trigger would always read nothing`,
          );
      }
      if (model) {
        // Other pools' queues (queueName() of every kind, per model): a query must not count them.
        const others = objects
          .filter((o) => o.kind === 'Deployment' && o !== w && podTemplate(o)?.metadata?.labels?.[COMPONENT_LABEL] === 'worker')
          .map((o) => effectiveEnv(o, podSpec(o).containers[0], objects).WORKER_MODEL)
          .filter((m): m is string => !!m && m !== model)
          .flatMap((m) => QUEUE_KINDS.map((k) => queueName(k, m)));
        const label = `trigger ${t.name ?? t.type}`;
        for (const m of q.matchAll(/\bqueue\s*(=~|=)\s*"([^"]+)"/g)) {
          const matches = (name: string) => (m[1] === '=' ? name === m[2] : new RegExp(`^(?:${m[2]})$`).test(name));
          if (!matches(queueName('generation', model)))
            report(a, 'autoscaling', `${label} watches queue ${m[2]} but ${w.metadata.name} serves ${queueName('generation', model)}`);
          else {
            const missed = PER_MODEL_KINDS.map((k) => queueName(k, model)).filter((n) => !matches(n));
            if (missed.length) report(a, 'autoscaling', `${label} misses queue(s) ${missed.join(', ')} the pool also consumes: their backlog never scales it`);
          }
          const foreign = others.filter(matches);
          if (foreign.length) report(a, 'autoscaling', `${label} also counts other pools' queues (${foreign.join(', ')})`);
        }
        for (const m of q.matchAll(/\bmodel\s*=\s*"([^"]+)"/g)) {
          if (m[1] !== model) report(a, 'autoscaling', `${label} watches model ${m[1]} but ${w.metadata.name} serves ${model}`);
        }
        if (!/\b(queue|model)\s*=~?\s*"/.test(q))
          report(a, 'autoscaling', `${label} does not filter by queue or model: every pool would scale on the whole farm's backlog`);
      }
      const th = Number(t.metadata?.threshold);
      if (!(th > 0)) report(a, 'autoscaling', `trigger ${t.name ?? t.type}: threshold must be a positive number`);
    }
    if ((a.spec?.minReplicaCount ?? 0) > (a.spec?.maxReplicaCount ?? 100)) report(a, 'autoscaling', 'minReplicaCount above maxReplicaCount');
  }
  for (const [w, list] of targets)
    if (list.length > 1) report(w, 'autoscaling', `scaled by ${list.length} autoscalers (${list.join(', ')}): they fight over the replica count`);

  // Redis: BullMQ needs noeviction; persistence via AOF on a volume; maxmemory below the container limit
  for (const w of workloads.filter((x) => podTemplate(x)?.metadata?.labels?.[COMPONENT_LABEL] === 'redis')) {
    const c = podSpec(w).containers?.[0];
    if (!c) continue;
    const conf = redisConfig(w, c, objects);
    if (conf['maxmemory-policy'] !== 'noeviction')
      report(
        w,
        'redis',
        `maxmemory-policy is ${conf['maxmemory-policy'] ?? 'unset (noeviction is the default only if nothing overrides it)'}; BullMQ needs noeviction, or Redis silently drops jobs and locks`,
      );
    if (conf.appendonly !== 'yes') report(w, 'redis', 'appendonly is not yes: a Redis restart loses every queued job');
    const limit = quantity(c.resources?.limits?.memory ?? '0');
    const max = redisBytes(conf.maxmemory ?? '0');
    if (!max) report(w, 'redis', 'maxmemory is unset: Redis grows until the container is OOM-killed instead of refusing writes');
    else if (limit && max > 0.85 * limit)
      report(
        w,
        'redis',
        `maxmemory ${conf.maxmemory} leaves less than 15% of the ${c.resources.limits.memory} limit for the AOF-rewrite fork and buffers: OOM kill under load`,
      );
    const dir = conf.dir ?? '/data';
    const mount = (c.volumeMounts ?? []).find((m: any) => m.mountPath === dir);
    const claimTemplates = (w.spec?.volumeClaimTemplates ?? []).map((t: any) => t.metadata?.name);
    const pvcVolume = (podSpec(w).volumes ?? []).find((v: any) => v.name === mount?.name && v.persistentVolumeClaim);
    if (!mount || (!claimTemplates.includes(mount.name) && !pvcVolume))
      report(w, 'redis', `data dir ${dir} is not on a persistent volume: the AOF dies with the pod`);
  }

  return problems;
}

function sameNs(a: K8sObject, b: K8sObject): boolean {
  return (a.metadata.namespace ?? '') === (b.metadata.namespace ?? '');
}

function matchLabels(sel: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!sel || !Object.keys(sel).length) return false;
  return Object.entries(sel).every(([k, v]) => labels?.[k] === v);
}

/** LabelSelector (matchLabels + matchExpressions In/NotIn/Exists/DoesNotExist). Empty selects nothing here. */
export function selects(sel: any, labels: Record<string, string> | undefined): boolean {
  if (!sel) return false;
  const ml = sel.matchLabels ?? {};
  const me: any[] = sel.matchExpressions ?? [];
  if (!Object.keys(ml).length && !me.length) return false;
  if (!Object.entries(ml).every(([k, v]) => labels?.[k] === v)) return false;
  return me.every((e) => {
    const has = labels !== undefined && e.key in labels;
    switch (e.operator) {
      case 'In':
        return has && e.values.includes(labels![e.key]);
      case 'NotIn':
        return !has || !e.values.includes(labels![e.key]);
      case 'Exists':
        return has;
      case 'DoesNotExist':
        return !has;
      default:
        return false;
    }
  });
}

/** Env of a container as the process sees it: envFrom ConfigMaps/Secrets, then env (later wins). */
export function effectiveEnv(w: K8sObject, c: any, objects: K8sObject[]): Record<string, string> {
  const ns = w.metadata.namespace ?? '';
  const get = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name && (o.metadata.namespace ?? '') === ns);
  const decode = (kind: string, v: string) => (kind === 'Secret' ? Buffer.from(v, 'base64').toString('utf8') : v);
  const out: Record<string, string> = {};
  for (const ef of c.envFrom ?? []) {
    const kind = ef.configMapRef ? 'ConfigMap' : 'Secret';
    const src = get(kind, (ef.configMapRef ?? ef.secretRef).name);
    for (const [k, v] of Object.entries(src?.data ?? {})) out[(ef.prefix ?? '') + k] = decode(kind, v as string);
    for (const [k, v] of Object.entries(src?.stringData ?? {})) out[(ef.prefix ?? '') + k] = v as string;
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) out[e.name] = String(e.value);
    const r = e.valueFrom?.configMapKeyRef ?? e.valueFrom?.secretKeyRef;
    if (r) {
      const kind = e.valueFrom.configMapKeyRef ? 'ConfigMap' : 'Secret';
      const v = get(kind, r.name)?.data?.[r.key];
      if (v !== undefined) out[e.name] = decode(kind, v);
    }
  }
  return out;
}

function effectivePort(w: K8sObject, c: any, app: AppName, objects: K8sObject[], facts: AppFacts): number | undefined {
  const v = effectiveEnv(w, c, objects)[facts.apps[app].portVar] || facts.env[facts.apps[app].portVar]?.default;
  return v === undefined || v === '' ? undefined : Number(v);
}

function modelNames(env: Record<string, string>, facts: AppFacts): string[] {
  const models = env.MODELS ?? facts.env.MODELS?.default ?? '';
  if (!models.trim()) return ['tiny-dllm'];
  return models
    .split(',')
    .map((e) => e.split('=')[0].trim())
    .filter(Boolean);
}

function stripQuery(p: string): string {
  return p.split('?')[0];
}

function preStopSeconds(c: any): number {
  const h = c.lifecycle?.preStop;
  if (!h) return 0;
  if (h.sleep?.seconds !== undefined) return Number(h.sleep.seconds);
  const cmd: string[] = h.exec?.command ?? [];
  const text = cmd.join(' ');
  const m = /\bsleep\s+(\d+)/.exec(text);
  return m ? Number(m[1]) : 0;
}

function redisConfig(w: K8sObject, c: any, objects: K8sObject[]): Record<string, string> {
  const conf: Record<string, string> = {};
  const args: string[] = [...(c.command ?? []), ...(c.args ?? [])].map(String);
  const ns = w.metadata.namespace ?? '';
  // a config file argument (first non-flag arg ending in .conf) mounted from a ConfigMap
  const file = args.find((a) => a.endsWith('.conf'));
  if (file) {
    const mount = (c.volumeMounts ?? []).find((m: any) => file.startsWith(m.mountPath.replace(/\/?$/, '/')));
    const vol = mount && (podSpec(w).volumes ?? []).find((v: any) => v.name === mount.name);
    const cm = vol?.configMap && objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === vol.configMap.name && (o.metadata.namespace ?? '') === ns);
    const key = mount?.subPath ?? file.slice(mount?.mountPath.replace(/\/?$/, '/').length ?? 0);
    const text: string | undefined = cm?.data?.[key];
    for (const line of (text ?? '').split('\n')) {
      const t = line.trim();
      if (!t || t.startsWith('#')) continue;
      const [k, ...rest] = t.split(/\s+/);
      conf[k.toLowerCase()] = rest.join(' ').replace(/^"(.*)"$/, '$1');
    }
  }
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith('--') && i + 1 < args.length) conf[args[i].slice(2).toLowerCase()] = args[i + 1];
  }
  return conf;
}

/** Kubernetes quantity -> number (bytes or cores). */
export function quantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(q.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  const mult: Record<string, number> = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
  return m[2] in mult ? n * mult[m[2]] : NaN;
}

/** Redis memory units (1k = 1000, 1kb = 1024, case-insensitive). */
export function redisBytes(s: string): number {
  const m = /^(\d+)([a-z]*)$/i.exec(s.trim());
  if (!m) return NaN;
  const mult: Record<string, number> = { '': 1, k: 1e3, kb: 1024, m: 1e6, mb: 1024 ** 2, g: 1e9, gb: 1024 ** 3 };
  return Number(m[1]) * (mult[m[2].toLowerCase()] ?? NaN);
}
