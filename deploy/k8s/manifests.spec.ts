// Every overlay renders (deploy/tools/kustomize.ts, no kubectl), validates against the Kubernetes,
// KEDA and Prometheus Operator schemas, and keeps the invariants of deploy/tools/validate.ts. Then each
// way of breaking a manifest that causes a real outage is applied to the rendered objects, and the
// validator must report it: a check that cannot fail is not a check.
import * as path from 'node:path';
import { readObjects, render, type K8sObject } from '../tools/kustomize';
import { loadAppFacts, type AppFacts } from '../tools/app-facts';
import { validateAll, type Problem, type Rule } from '../tools/validate';

const K8S = path.join(__dirname);
const PENDING_METRIC = 'dllm_pending_forward_passes';
const OVERLAYS = ['base', 'overlays/dev', 'overlays/gpu'];

let facts: AppFacts;
const rendered = new Map<string, K8sObject[]>();

beforeAll(() => {
  facts = loadAppFacts();
  for (const o of OVERLAYS) rendered.set(o, render(path.join(K8S, o)));
});

const fresh = (overlay: string): K8sObject[] => structuredClone(rendered.get(overlay)!);
const get = (objs: K8sObject[], kind: string, name: string): K8sObject => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`${kind}/${name} not rendered`);
  return o;
};
const gen = (objs: K8sObject[], kind: string, base: string): K8sObject => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name.startsWith(base + '-'));
  if (!o) throw new Error(`generated ${kind} ${base} not rendered`);
  return o;
};
const container = (o: K8sObject, i = 0) => o.spec.template.spec.containers[i];
const fmt = (ps: Problem[]) => ps.map((p) => `${p.object}: ${p.rule}: ${p.message}`).join('\n');

/** The validator must report `rule` on `objectId` with a message matching `msg`, and nothing new besides. */
function expectProblem(overlay: string, objs: K8sObject[], rule: Rule, msg: RegExp, f: AppFacts = facts) {
  const before = new Set(validateAll(rendered.get(overlay)!, facts).map(fmt1));
  const after = validateAll(objs, f);
  const added = after.filter((p) => !before.has(fmt1(p)));
  const hit = added.find((p) => p.rule === rule && msg.test(p.message));
  if (!hit) throw new Error(`expected a new '${rule}' problem matching ${msg}; new problems:\n${fmt(added) || '(none)'}`);
}
const fmt1 = (p: Problem) => `${p.object}|${p.rule}|${p.message}`;

describe('rendered overlays', () => {
  it.each(OVERLAYS)('%s renders, validates against the schemas and keeps every invariant', (overlay) => {
    const objs = rendered.get(overlay)!;
    expect(objs.length).toBeGreaterThan(10);
    // the gauge the KEDA triggers query is registered by the gateway (apps/gateway metrics)
    expect(facts.metrics.has(PENDING_METRIC)).toBe(true);
    expect(fmt(validateAll(objs, facts))).toBe('');
  });

  it('the model-loader pod is valid next to the gpu overlay (its volume claim exists there)', () => {
    const loader = readObjects(path.join(K8S, 'jobs', 'model-loader.yaml'));
    expect(fmt(validateAll([...rendered.get('overlays/gpu')!, ...loader], facts))).toBe('');
    delete loader[0].spec.containers[0].resources;
    expect(fmt(validateAll([...rendered.get('overlays/gpu')!, ...loader], facts))).toMatch(
      /Pod\/dllm-farm\/model-loader: resources: container loader has no cpu request/,
    );
  });

  it('dev and gpu differ where they should (CPU vs CUDA image, GPUs, scale to zero, namespace)', () => {
    const dev = rendered.get('overlays/dev')!;
    const gpu = rendered.get('overlays/gpu')!;
    expect(container(get(dev, 'Deployment', 'worker-tiny-dllm')).image).toBe('ghcr.io/dllm-farm/worker:0.1.0-models');
    expect(container(get(gpu, 'Deployment', 'worker-tiny-dllm')).image).toBe('ghcr.io/dllm-farm/worker-cuda:0.1.0');
    expect(container(get(gpu, 'Deployment', 'worker-tiny-ar')).resources.limits['nvidia.com/gpu']).toBe('1');
    expect(container(get(dev, 'Deployment', 'worker-tiny-dllm')).resources.limits['nvidia.com/gpu']).toBeUndefined();
    expect(get(dev, 'ScaledObject', 'worker-tiny-dllm').spec.minReplicaCount).toBe(0);
    expect(get(gpu, 'ScaledObject', 'worker-tiny-ar').spec.minReplicaCount).toBe(0);
    for (const o of [...dev, ...gpu]) if (o.kind !== 'Namespace') expect(`${o.kind}/${o.metadata.name}:${o.metadata.namespace}`).toMatch(/:dllm-farm$/);
    expect(dev.some((o) => o.kind === 'PersistentVolumeClaim' && o.metadata.name === 'dllm-models')).toBe(false);
    // the gpu patch replaces the tolerations list: the fast node-loss ones must survive it
    for (const w of [get(gpu, 'Deployment', 'worker-tiny-dllm'), get(gpu, 'Deployment', 'worker-tiny-ar'), get(dev, 'Deployment', 'worker-tiny-dllm')]) {
      expect(w.spec.template.spec.tolerations).toEqual(
        expect.arrayContaining([expect.objectContaining({ key: 'node.kubernetes.io/unreachable', tolerationSeconds: 30 })]),
      );
    }
  });

  it('generated ConfigMaps/Secrets carry a content hash and pods reference the hashed names', () => {
    const gpu = rendered.get('overlays/gpu')!;
    const cm = gen(gpu, 'ConfigMap', 'dllm-config');
    expect(cm.metadata.name).toMatch(/^dllm-config-[0-9a-f]{10}$/);
    expect(container(get(gpu, 'Deployment', 'gateway')).envFrom[0].configMapRef.name).toBe(cm.metadata.name);
    expect(cm.data.MODELS).toBe('tiny-dllm=/models/tiny-dllm,tiny-ar=/models/tiny-ar');
    const devCm = gen(rendered.get('overlays/dev')!, 'ConfigMap', 'dllm-config');
    expect(devCm.metadata.name).not.toBe(cm.metadata.name);
  });

  it('reads probe paths, ports and metrics from the real app sources', () => {
    for (const app of ['gateway', 'worker'] as const) {
      for (const r of ['/healthz', '/readyz', '/metrics']) expect(facts.apps[app].routes).toContain(r);
    }
    expect(facts.env.GATEWAY_PORT.default).toBe('8080');
    expect(facts.env[facts.apps.worker.portVar].default).toMatch(/^\d+$/);
    expect(facts.metrics).toContain('dllm_queue_jobs');
  });
});

describe('a broken manifest is reported', () => {
  it('container without resources', () => {
    const objs = fresh('overlays/dev');
    delete container(get(objs, 'Deployment', 'gateway')).resources;
    expectProblem('overlays/dev', objs, 'resources', /gateway has no memory limit/);
  });

  it('request above limit', () => {
    const objs = fresh('overlays/gpu');
    container(get(objs, 'Deployment', 'worker-tiny-dllm')).resources.requests.memory = '64Gi';
    expectProblem('overlays/gpu', objs, 'resources', /memory request 64Gi is above its limit/);
  });

  it.each([
    ['ghcr.io/dllm-farm/gateway:latest', 'latest tag'],
    ['ghcr.io/dllm-farm/gateway', 'no tag'],
  ])('image %s (%s)', (image) => {
    const objs = fresh('overlays/dev');
    container(get(objs, 'Deployment', 'gateway')).image = image;
    expectProblem('overlays/dev', objs, 'image-pinned', /is not pinned/);
  });

  it('a digest pins an image', () => {
    const objs = fresh('overlays/dev');
    container(get(objs, 'Deployment', 'gateway')).image = `ghcr.io/dllm-farm/gateway@sha256:${'a'.repeat(64)}`;
    expect(validateAll(objs, facts).filter((p) => p.rule === 'image-pinned')).toEqual([]);
  });

  it('missing liveness / readiness / worker startup probe', () => {
    const objs = fresh('overlays/gpu');
    delete container(get(objs, 'Deployment', 'gateway')).readinessProbe;
    delete container(get(objs, 'Deployment', 'worker-tiny-ar')).startupProbe;
    delete container(get(objs, 'StatefulSet', 'redis')).livenessProbe;
    expectProblem('overlays/gpu', objs, 'probes', /gateway has no readinessProbe/);
    expectProblem('overlays/gpu', objs, 'probes', /needs a startupProbe/);
    expectProblem('overlays/gpu', objs, 'probes', /redis has no livenessProbe/);
  });

  it('probe port that is not a container port', () => {
    const objs = fresh('overlays/dev');
    container(get(objs, 'Deployment', 'worker-tiny-dllm')).livenessProbe.httpGet.port = 8081;
    expectProblem('overlays/dev', objs, 'probe-target', /livenessProbe port 8081 is not a port of the container/);
  });

  it('container port that is not where the app listens (config says otherwise)', () => {
    const objs = fresh('overlays/dev');
    container(get(objs, 'Deployment', 'gateway')).ports[0].containerPort = 3000;
    expectProblem('overlays/dev', objs, 'probe-target', /goes to port 3000 but the gateway listens on 8080 \(GATEWAY_PORT\)/);
  });

  it('port env var drifting from the probes (WORKER_PORT set to another port)', () => {
    const objs = fresh('overlays/gpu');
    const w = get(objs, 'Deployment', 'worker-tiny-ar');
    container(w).env.push({ name: facts.apps.worker.portVar, value: '7070' });
    expectProblem('overlays/gpu', objs, 'probe-target', /worker listens on 7070/);
  });

  it('probe path the app does not serve', () => {
    const objs = fresh('overlays/dev');
    container(get(objs, 'Deployment', 'gateway')).readinessProbe.httpGet.path = '/ready';
    expectProblem('overlays/dev', objs, 'probe-target', /path \/ready is not served by the gateway/);
  });

  it('an app that stops serving a probed path (drift in the sources) is caught', () => {
    const drifted: AppFacts = { ...facts, apps: { ...facts.apps, worker: { ...facts.apps.worker, routes: new Set(['/healthz', '/metrics']) } } };
    expectProblem('overlays/dev', fresh('overlays/dev'), 'probe-target', /path \/readyz is not served by the worker/, drifted);
  });

  it('liveness on the readiness path (a Redis blip would restart every pod)', () => {
    const objs = fresh('overlays/dev');
    container(get(objs, 'Deployment', 'gateway')).livenessProbe.httpGet.path = '/readyz';
    expectProblem('overlays/dev', objs, 'probes', /liveness and readiness use the same path/);
  });

  it('grace period below preStop + drain timeout', () => {
    const objs = fresh('overlays/gpu');
    get(objs, 'Deployment', 'worker-tiny-dllm').spec.template.spec.terminationGracePeriodSeconds = 300;
    expectProblem('overlays/gpu', objs, 'grace-period', /must be at least 315 .*WORKER_DRAIN_TIMEOUT_MS 300s/);
  });

  it('drain timeout raised in the ConfigMap without raising the grace period', () => {
    const objs = fresh('overlays/dev');
    const w = get(objs, 'Deployment', 'worker-tiny-dllm');
    container(w).env = container(w).env.filter((e: any) => e.name !== 'WORKER_DRAIN_TIMEOUT_MS');
    gen(objs, 'ConfigMap', 'dllm-config').data.WORKER_DRAIN_TIMEOUT_MS = '600000';
    expectProblem('overlays/dev', objs, 'grace-period', /WORKER_DRAIN_TIMEOUT_MS 600s/);
  });

  it('a job timeout in the config table longer than the grace period', () => {
    const withTimeout: AppFacts = {
      ...facts,
      env: { ...facts.env, JOB_TIMEOUT_SECONDS: { default: '900', validate: () => undefined } },
      jobTimeoutVars: [{ name: 'JOB_TIMEOUT_SECONDS', secondsPerUnit: 1 }],
    };
    expectProblem('overlays/gpu', fresh('overlays/gpu'), 'grace-period', /JOB_TIMEOUT_SECONDS 900s/, withTimeout);
  });

  it('Secret reference that does not exist, or a missing key', () => {
    const objs = fresh('overlays/gpu');
    container(get(objs, 'Deployment', 'gateway')).env.find((e: any) => e.name === 'API_KEYS').valueFrom.secretKeyRef.name = 'api-keys';
    expectProblem('overlays/gpu', objs, 'config-ref', /references Secret api-keys, which is not in the manifests/);
    const objs2 = fresh('overlays/gpu');
    container(get(objs2, 'Deployment', 'gateway')).env.find((e: any) => e.name === 'API_KEYS').valueFrom.secretKeyRef.key = 'KEYS';
    expectProblem('overlays/gpu', objs2, 'config-ref', /references key KEYS of Secret/);
  });

  it('a Secret removed from the manifests (generator dropped)', () => {
    const objs = fresh('overlays/dev').filter((o) => o.kind !== 'Secret');
    expectProblem('overlays/dev', objs, 'config-ref', /Secret dllm-api-keys-[0-9a-f]+, which is not in the manifests/);
  });

  it('TLS Secret nobody issues', () => {
    const objs = fresh('overlays/gpu');
    delete get(objs, 'Ingress', 'gateway').metadata.annotations!['cert-manager.io/cluster-issuer'];
    expectProblem('overlays/gpu', objs, 'config-ref', /TLS Secret dllm-gateway-tls/);
  });

  it('PDB whose labels match no pods', () => {
    const objs = fresh('overlays/gpu');
    get(objs, 'PodDisruptionBudget', 'worker-tiny-ar').spec.selector.matchLabels['dllm-farm.io/model'] = 'tiny_ar';
    expectProblem('overlays/gpu', objs, 'pdb', /matches no workload's pods/);
    expectProblem('overlays/gpu', objs, 'pdb', /has no PodDisruptionBudget/);
  });

  it('PDB that blocks every eviction, and pods under two PDBs', () => {
    const objs = fresh('overlays/dev');
    const redisPdb: K8sObject = {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'redis', namespace: 'dllm-farm' },
      spec: { minAvailable: 1, selector: { matchLabels: { 'app.kubernetes.io/component': 'redis' } } },
    };
    const broad: K8sObject = {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'all-workers', namespace: 'dllm-farm' },
      spec: { maxUnavailable: 1, selector: { matchLabels: { 'app.kubernetes.io/component': 'worker' } } },
    };
    objs.push(redisPdb, broad);
    expectProblem('overlays/dev', objs, 'pdb', /minAvailable 1 with 1 replica\(s\) of redis: no pod can ever be evicted/);
    expectProblem('overlays/dev', objs, 'pdb', /selected by 2 PodDisruptionBudgets/);
  });

  it('Service targetPort and selector drift', () => {
    const objs = fresh('overlays/dev');
    get(objs, 'Service', 'gateway').spec.ports[0].targetPort = 'web';
    get(objs, 'Service', 'redis').spec.selector['app.kubernetes.io/component'] = 'cache';
    expectProblem('overlays/dev', objs, 'service', /targetPort web is not a container port of gateway/);
    expectProblem('overlays/dev', objs, 'service', /matches no pods/);
  });

  it('Ingress that times out before the gateway or buffers SSE', () => {
    const objs = fresh('overlays/gpu');
    gen(objs, 'ConfigMap', 'dllm-config').data.REQUEST_TIMEOUT_MS = '900000';
    delete get(objs, 'Ingress', 'gateway').metadata.annotations!['nginx.ingress.kubernetes.io/proxy-buffering'];
    expectProblem('overlays/gpu', objs, 'ingress', /proxy-read-timeout 660s is not above the gateway's REQUEST_TIMEOUT_MS \(900s\)/);
    expectProblem('overlays/gpu', objs, 'ingress', /proxy-buffering is not off/);
  });

  it('a KV pool that does not fit the worker memory limit', () => {
    const objs = fresh('overlays/gpu');
    container(get(objs, 'Deployment', 'worker-tiny-ar')).env.find((e: any) => e.name === 'KV_POOL_BYTES').value = String(20 * 1024 ** 3);
    expectProblem('overlays/gpu', objs, 'resources', /KV_POOL_BYTES 21474836480 is above 60% of the 24Gi memory limit/);
  });

  it('Ingress to a Service port that does not exist', () => {
    const objs = fresh('overlays/dev');
    get(objs, 'Ingress', 'gateway').spec.rules[0].http.paths[0].backend.service.port = { name: 'https' };
    expectProblem('overlays/dev', objs, 'ingress', /has no port https/);
  });

  it('ServiceMonitor selecting nothing or a port name that does not exist', () => {
    const objs = fresh('overlays/gpu');
    get(objs, 'ServiceMonitor', 'worker').spec.endpoints[0].port = 'metrics';
    get(objs, 'ServiceMonitor', 'gateway').spec.selector.matchLabels['app.kubernetes.io/component'] = 'api';
    expectProblem('overlays/gpu', objs, 'monitoring', /endpoint port metrics is not a named port of Service worker-metrics/);
    expectProblem('overlays/gpu', objs, 'monitoring', /matches no Service/);
  });

  it("ScaledObject watching another pool's queue, or a metric no app exposes", () => {
    const objs = fresh('overlays/gpu');
    const so = get(objs, 'ScaledObject', 'worker-tiny-ar');
    so.spec.triggers[1].metadata.query = 'sum(dllm_queue_jobs{queue="dllm.generation.tiny-dllm",state="waiting"})';
    so.spec.triggers[0].metadata.query = 'sum(dllm_pending_forward_pass{model="tiny-ar"})';
    expectProblem('overlays/gpu', objs, 'autoscaling', /watches queue dllm.generation.tiny-dllm but worker-tiny-ar serves dllm.generation.tiny-ar/);
    expectProblem('overlays/gpu', objs, 'autoscaling', /metric dllm_pending_forward_pass is not exposed/);
    const objs2 = fresh('overlays/gpu');
    const so2 = get(objs2, 'ScaledObject', 'worker-tiny-ar');
    so2.spec.triggers[0].metadata.query = so2.spec.triggers[0].metadata.query.replace('model="tiny-ar"', 'model="tiny-dllm"');
    so2.spec.triggers[1].metadata.query = so2.spec.triggers[1].metadata.query.replace('[.]tiny-ar', '[.]tiny-.*');
    expectProblem('overlays/gpu', objs2, 'autoscaling', /watches model tiny-dllm but worker-tiny-ar serves tiny-ar/);
    expectProblem('overlays/gpu', objs2, 'autoscaling', /also counts other pools' queues \(dllm.generation.tiny-dllm, dllm.rollout.tiny-dllm/);
    const objs4 = fresh('overlays/gpu');
    const so4 = get(objs4, 'ScaledObject', 'worker-tiny-ar');
    so4.spec.triggers[1].metadata.query = so4.spec.triggers[1].metadata.query.replace('generation|rollout|distill', 'generation');
    expectProblem('overlays/gpu', objs4, 'autoscaling', /misses queue\(s\) dllm.rollout.tiny-ar, dllm.distill.tiny-ar the pool also consumes/);
    const objs3 = fresh('overlays/gpu');
    get(objs3, 'ScaledObject', 'worker-tiny-ar').spec.triggers[0].metadata.query = 'sum(dllm_queue_jobs)';
    expectProblem('overlays/gpu', objs3, 'autoscaling', /does not filter by queue or model/);
  });

  it('an autoscaled Deployment with spec.replicas, and a second autoscaler', () => {
    const objs = fresh('overlays/dev');
    get(objs, 'Deployment', 'worker-tiny-dllm').spec.replicas = 2;
    objs.push({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'w', namespace: 'dllm-farm' },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'worker-tiny-dllm' }, minReplicas: 1, maxReplicas: 3 },
    });
    expectProblem('overlays/dev', objs, 'autoscaling', /sets spec.replicas/);
    expectProblem('overlays/dev', objs, 'autoscaling', /scaled by 2 autoscalers/);
    const objs2 = fresh('overlays/gpu');
    get(objs2, 'Deployment', 'gateway').spec.replicas = 3;
    expectProblem('overlays/gpu', objs2, 'autoscaling', /target gateway sets spec.replicas: every kubectl apply resets the count the HPA autoscaler chose/);
  });

  it('GPU worker without toleration / node selector, CUDA provider without a GPU', () => {
    const objs = fresh('overlays/gpu');
    const w = get(objs, 'Deployment', 'worker-tiny-dllm');
    delete w.spec.template.spec.tolerations;
    delete w.spec.template.spec.nodeSelector;
    const ar = get(objs, 'Deployment', 'worker-tiny-ar');
    delete container(ar).resources.limits['nvidia.com/gpu'];
    delete container(ar).resources.requests['nvidia.com/gpu'];
    expectProblem('overlays/gpu', objs, 'gpu', /does not tolerate the nvidia.com\/gpu taint/);
    expectProblem('overlays/gpu', objs, 'gpu', /no nvidia.com\/\* nodeSelector/);
    expectProblem('overlays/gpu', objs, 'gpu', /WORKER_EXECUTION_PROVIDER=cuda but the container requests no nvidia.com\/gpu/);
  });

  it('config values libs/config would reject at boot, and a worker model not in MODELS', () => {
    const objs = fresh('overlays/dev');
    gen(objs, 'ConfigMap', 'dllm-config').data.QUEUE_PREFIX = 'bull:{dllm}';
    container(get(objs, 'Deployment', 'worker-tiny-dllm')).env.find((e: any) => e.name === 'WORKER_MODEL').value = 'tiny-ar';
    expectProblem('overlays/dev', objs, 'config-value', /QUEUE_PREFIX='bull:\{dllm\}' is rejected by libs\/config/);
    expectProblem('overlays/dev', objs, 'config-value', /WORKER_MODEL 'tiny-ar' is not one of MODELS/);
  });

  it('REDIS_URL naming an in-cluster Service that does not exist (renamed Service or namespace)', () => {
    const objs = fresh('overlays/dev');
    gen(objs, 'ConfigMap', 'dllm-config').data.REDIS_URL = 'redis://redis.dllm.svc.cluster.local:6379';
    expectProblem('overlays/dev', objs, 'config-value', /names Service redis in namespace dllm, which is not in the manifests/);
    const objs2 = fresh('overlays/dev');
    gen(objs2, 'ConfigMap', 'dllm-config').data.REDIS_URL = 'redis://redis:6380';
    expectProblem('overlays/dev', objs2, 'config-value', /REDIS_URL port 6380 is not a port of Service redis/);
    const external = fresh('overlays/dev');
    gen(external, 'ConfigMap', 'dllm-config').data.REDIS_URL = 'rediss://my-redis.example.com:6380';
    expect(validateAll(external, facts).filter((p) => p.rule === 'config-value')).toEqual([]);
  });

  it('Redis that evicts, does not persist, or may be OOM-killed', () => {
    const objs = fresh('overlays/gpu');
    const conf = gen(objs, 'ConfigMap', 'redis-config');
    conf.data['redis.conf'] = conf.data['redis.conf']
      .replace('maxmemory-policy noeviction', 'maxmemory-policy allkeys-lru')
      .replace('appendonly yes', 'appendonly no');
    container(get(objs, 'StatefulSet', 'redis')).args = ['/etc/redis/redis.conf', '--maxmemory', '8gb'];
    expectProblem('overlays/gpu', objs, 'redis', /BullMQ needs noeviction/);
    expectProblem('overlays/gpu', objs, 'redis', /appendonly is not yes/);
    expectProblem('overlays/gpu', objs, 'redis', /maxmemory 8gb leaves less than 15%/);
    const objs2 = fresh('overlays/dev');
    get(objs2, 'StatefulSet', 'redis').spec.volumeClaimTemplates = [];
    get(objs2, 'StatefulSet', 'redis').spec.template.spec.volumes.push({ name: 'data', emptyDir: {} });
    expectProblem('overlays/dev', objs2, 'redis', /not on a persistent volume/);
  });

  it('volume claims and mounts that do not exist', () => {
    const objs = fresh('overlays/gpu').filter((o) => !(o.kind === 'PersistentVolumeClaim' && o.metadata.name === 'dllm-models'));
    container(get(objs, 'Deployment', 'gateway')).volumeMounts.push({ name: 'weights', mountPath: '/weights' });
    expectProblem('overlays/gpu', objs, 'volume', /claims PersistentVolumeClaim dllm-models/);
    expectProblem('overlays/gpu', objs, 'volume', /mounts volume weights, which the pod does not define/);
  });

  it('a container that may run as root', () => {
    const objs = fresh('overlays/dev');
    delete get(objs, 'Deployment', 'gateway').spec.template.spec.securityContext.runAsNonRoot;
    expectProblem('overlays/dev', objs, 'security', /may run as root/);
  });

  it('schema: wrong types, typos in field names, unknown kinds', () => {
    const objs = fresh('overlays/gpu');
    container(get(objs, 'Deployment', 'gateway')).ports[0].containerPort = '8080';
    const w = container(get(objs, 'Deployment', 'worker-tiny-dllm'));
    w.livenesProbe = w.livenessProbe;
    get(objs, 'ScaledObject', 'worker-tiny-dllm').spec.triggers[0].metadata.threshold = 3000;
    gen(objs, 'ConfigMap', 'dllm-config').data.WORKER_PORT = 9090;
    objs.push({ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObjekt', metadata: { name: 'x', namespace: 'dllm-farm' } });
    expectProblem('overlays/gpu', objs, 'schema', /containerPort must be integer/);
    expectProblem('overlays/gpu', objs, 'schema', /livenesProbe: unknown field/);
    expectProblem('overlays/gpu', objs, 'schema', /threshold must be string/);
    expectProblem('overlays/gpu', objs, 'schema', /WORKER_PORT must be string/);
    expectProblem('overlays/gpu', objs, 'schema', /no schema for keda.sh\/v1alpha1 ScaledObjekt/);
  });
});
