// Strategic merge patches as kustomize applies them, one fixture per patch kind the overlays use
// (deploy/k8s/overlays/*) plus the keyed lists of issue 12 (a Service port patch that adds a port).
// Each fixture is rendered through render() and compared with the expected objects, written out by
// hand from kustomize's semantics; where `kubectl` is on PATH the same fixture also goes through
// `kubectl kustomize` and must come out identical (kubectl v1.32 / kustomize v5.5 when written).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { hasKubectl, kubectlKustomize } from './kubectl';
import { KustomizeError, render } from './kustomize';
import { rootType, strategicMerge, StrategicMergeError } from './strategic-merge';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-smp-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Writes resources and one patch file per patch, renders with ours (and kubectl when present). */
function renderFixture(resources: object[], patches: object[]): { ours: unknown[]; kubectl?: unknown[] } {
  fs.writeFileSync(path.join(tmp, 'r.yaml'), resources.map((o) => stringify(o)).join('---\n'));
  patches.forEach((p, i) => fs.writeFileSync(path.join(tmp, `p${i}.yaml`), stringify(p)));
  fs.writeFileSync(path.join(tmp, 'kustomization.yaml'), stringify({ resources: ['r.yaml'], patches: patches.map((_p, i) => ({ path: `p${i}.yaml` })) }));
  const ours = render(tmp);
  return { ours, kubectl: hasKubectl() ? kubectlKustomize(tmp) : undefined };
}

const byId = (objs: any[]) => Object.fromEntries(objs.map((o) => [`${o.kind}/${o.metadata.name}`, o]));

/** Checks ours against the expected objects and, with kubectl, kubectl's against ours. */
function expectRendered(resources: object[], patches: object[], expected: object[]) {
  const { ours, kubectl } = renderFixture(resources, patches);
  expect(byId(ours)).toEqual(byId(expected));
  if (kubectl) expect(byId(kubectl)).toEqual(byId(ours));
}

const svc = (ports: object[]) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'gateway' }, spec: { selector: { app: 'g' }, ports } });

const deployment = (podSpec: object, name = 'worker') => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name },
  spec: { template: { spec: podSpec } },
});

describe('strategic merge per field path (checked with kubectl kustomize where present)', () => {
  it('Service spec.ports merge on port: a patch adding a port keeps both', () => {
    expectRendered(
      [svc([{ name: 'http', port: 80, targetPort: 8080 }])],
      [svc([{ name: 'metrics', port: 9090, targetPort: 9090 }])],
      [
        svc([
          { name: 'metrics', port: 9090, targetPort: 9090 },
          { name: 'http', port: 80, targetPort: 8080 },
        ]),
      ],
    );
  });

  it('Service spec.ports: the same port merges into the original, in patch order', () => {
    expectRendered(
      [
        svc([
          { name: 'a', port: 1 },
          { name: 'b', port: 2 },
          { name: 'c', port: 3 },
        ]),
      ],
      [
        svc([
          { name: 'c1', port: 3 },
          { port: 1, targetPort: 8081 },
        ]),
      ],
      [
        svc([
          { name: 'c1', port: 3 },
          { name: 'a', port: 1, targetPort: 8081 },
          { name: 'b', port: 2 },
        ]),
      ],
    );
  });

  it('containers on name (patch order first), ports on containerPort, env on name, volumeMounts on mountPath', () => {
    const base = deployment({
      containers: [
        {
          name: 'worker',
          image: 'w:1',
          ports: [{ name: 'http', containerPort: 9090 }],
          env: [
            { name: 'A', value: '1' },
            { name: 'B', value: '2' },
          ],
          volumeMounts: [{ name: 'models', mountPath: '/models' }],
        },
        { name: 'sidecar', image: 's:1' },
      ],
    });
    const patch = deployment({
      containers: [
        { name: 'sidecar', image: 's:2' },
        {
          name: 'worker',
          ports: [{ name: 'debug', containerPort: 9229 }],
          env: [
            { name: 'B', value: '20' },
            { name: 'C', value: '3' },
          ],
          volumeMounts: [{ name: 'cache', mountPath: '/cache' }],
        },
      ],
    });
    expectRendered(
      [base],
      [patch],
      [
        deployment({
          containers: [
            { name: 'sidecar', image: 's:2' },
            {
              name: 'worker',
              image: 'w:1',
              ports: [
                { name: 'debug', containerPort: 9229 },
                { name: 'http', containerPort: 9090 },
              ],
              env: [
                { name: 'B', value: '20' },
                { name: 'C', value: '3' },
                { name: 'A', value: '1' },
              ],
              volumeMounts: [
                { name: 'cache', mountPath: '/cache' },
                { name: 'models', mountPath: '/models' },
              ],
            },
          ],
        }),
      ],
    );
  });

  it('$patch: delete of a volumeMount (by mountPath) and a volume (by name); maps merge; tolerations and args are replaced', () => {
    const base = deployment({
      terminationGracePeriodSeconds: 60,
      nodeSelector: { 'kubernetes.io/os': 'linux' },
      tolerations: [{ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 30 }],
      containers: [
        {
          name: 'worker',
          image: 'w:1',
          args: ['--a'],
          resources: { requests: { cpu: '1', memory: '1Gi' }, limits: { memory: '2Gi' } },
          volumeMounts: [
            { name: 'models', mountPath: '/models' },
            { name: 'storage', mountPath: '/storage' },
          ],
        },
      ],
      volumes: [
        { name: 'models', persistentVolumeClaim: { claimName: 'dllm-models' } },
        { name: 'storage', emptyDir: {} },
      ],
    });
    const patch = deployment({
      terminationGracePeriodSeconds: 330,
      nodeSelector: { 'nvidia.com/gpu.present': 'true' },
      tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      containers: [
        {
          name: 'worker',
          args: ['--b'],
          resources: { requests: { 'nvidia.com/gpu': '1' }, limits: { 'nvidia.com/gpu': '1' } },
          startupProbe: { httpGet: { path: '/healthz', port: 'http' }, failureThreshold: 60 },
          volumeMounts: [{ mountPath: '/models', $patch: 'delete' }],
        },
      ],
      volumes: [{ name: 'models', $patch: 'delete' }],
    });
    expectRendered(
      [base],
      [patch],
      [
        deployment({
          terminationGracePeriodSeconds: 330,
          nodeSelector: { 'kubernetes.io/os': 'linux', 'nvidia.com/gpu.present': 'true' },
          tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
          containers: [
            {
              name: 'worker',
              image: 'w:1',
              args: ['--b'],
              resources: { requests: { cpu: '1', memory: '1Gi', 'nvidia.com/gpu': '1' }, limits: { memory: '2Gi', 'nvidia.com/gpu': '1' } },
              startupProbe: { httpGet: { path: '/healthz', port: 'http' }, failureThreshold: 60 },
              volumeMounts: [{ name: 'storage', mountPath: '/storage' }],
            },
          ],
          volumes: [{ name: 'storage', emptyDir: {} }],
        }),
      ],
    );
  });

  it('StatefulSet volumeClaimTemplates have no merge key: the patch replaces the list', () => {
    const ss = (spec: object) => ({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'redis' }, spec });
    const claim = (name: string, spec: object) => ({ metadata: { name }, spec });
    expectRendered(
      [
        ss({
          template: { spec: { containers: [{ name: 'redis', image: 'r' }] } },
          volumeClaimTemplates: [
            claim('data', { storageClassName: 'fast', accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } }),
            claim('logs', {}),
          ],
        }),
      ],
      [ss({ volumeClaimTemplates: [claim('data', { resources: { requests: { storage: '100Gi' } } })] })],
      [
        ss({
          template: { spec: { containers: [{ name: 'redis', image: 'r' }] } },
          volumeClaimTemplates: [claim('data', { resources: { requests: { storage: '100Gi' } } })],
        }),
      ],
    );
  });

  it('Ingress rules and tls are replaced, annotations merge; a PVC spec merges and $patch: delete drops a whole object', () => {
    const ing = (metadata: object, spec: object) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'gateway', ...metadata }, spec });
    const rule = (host: string) => ({
      host,
      http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'gateway', port: { name: 'http' } } } }] },
    });
    const pvc = (name: string, spec: object) => ({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name }, spec });
    expectRendered(
      [
        ing({ annotations: { a: '1' } }, { ingressClassName: 'nginx', rules: [rule('a.example'), rule('b.example')] }),
        pvc('storage', { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '50Gi' } } }),
        pvc('models', {}),
      ],
      [
        ing({ annotations: { b: '2' } }, { rules: [rule('dllm.localhost')], tls: [{ hosts: ['dllm.localhost'], secretName: 't' }] }),
        pvc('storage', { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '5Gi' } } }),
        { ...pvc('models', {}), $patch: 'delete' },
      ],
      [
        ing(
          { annotations: { a: '1', b: '2' } },
          { ingressClassName: 'nginx', rules: [rule('dllm.localhost')], tls: [{ hosts: ['dllm.localhost'], secretName: 't' }] },
        ),
        pvc('storage', { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '5Gi' } } }),
      ],
    );
  });

  it('CRDs (no schema): lists are replaced even when their items have names; maps merge', () => {
    const so = (spec: object) => ({ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name: 'w' }, spec });
    expectRendered(
      [
        so({
          minReplicaCount: 1,
          advanced: { a: 1 },
          triggers: [
            { type: 'redis', name: 't1', metadata: { x: '1' } },
            { type: 'cpu', name: 't2', metadata: {} },
          ],
        }),
      ],
      [so({ advanced: { b: 2 }, triggers: [{ name: 't2', metadata: { z: '9' } }] })],
      [so({ minReplicaCount: 1, advanced: { a: 1, b: 2 }, triggers: [{ name: 't2', metadata: { z: '9' } }] })],
    );
  });

  it('metadata.finalizers merge as a set (patch order first); $patch: replace replaces a map', () => {
    const d = (metadata: object, spec: object) => ({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd', ...metadata }, spec });
    expectRendered(
      [d({ finalizers: ['a', 'b'] }, { selector: { matchLabels: { a: '1', b: '2' } } })],
      [d({ finalizers: ['c', 'a'] }, { selector: { matchLabels: { $patch: 'replace', c: '3' } } })],
      [d({ finalizers: ['c', 'a', 'b'] }, { selector: { matchLabels: { c: '3' } } })],
    );
  });
});

describe('strategicMerge refuses what it cannot do exactly', () => {
  const pod = rootType('apps/v1', 'Deployment');

  it('port lists whose items set protocol (kustomize v5.5 drops or reorders such items)', () => {
    const service = rootType('v1', 'Service');
    expect(() => strategicMerge(svc([{ port: 80 }]), svc([{ port: 80, protocol: 'TCP', targetPort: 1 }]), service)).toThrow(
      /items set 'protocol' is not supported/,
    );
    expect(() => strategicMerge(svc([{ port: 80, protocol: 'TCP' }]), svc([{ port: 81 }]), service)).toThrow(/port\+protocol/);
  });

  it('unsupported directives, list fields and missing items, with the path', () => {
    expect(() => strategicMerge(deployment({}), deployment({ topologySpreadConstraints: [{ topologyKey: 'zone' }] }), pod)).toThrow(
      /topologySpreadConstraints.*not supported/,
    );
    expect(() => strategicMerge(deployment({}), deployment({ $retainKeys: ['a'] }), pod)).toThrow(StrategicMergeError);
    expect(() => strategicMerge(deployment({ volumes: [] }), deployment({ volumes: [{ name: 'x', $patch: 'delete' }] }), pod)).toThrow(
      /spec\/template\/spec\/volumes: \$patch: delete of name=x: no such item/,
    );
    expect(() => strategicMerge(deployment({ tolerations: [] }), deployment({ tolerations: [{ key: 'a', $patch: 'delete' }] }), pod)).toThrow(
      /without a merge key/,
    );
  });

  it('render() names the patch file and object on a refusal', () => {
    fs.writeFileSync(path.join(tmp, 'r.yaml'), stringify(svc([{ port: 80 }])));
    fs.writeFileSync(path.join(tmp, 'p.yaml'), stringify(svc([{ port: 81, protocol: 'TCP' }])));
    fs.writeFileSync(path.join(tmp, 'kustomization.yaml'), stringify({ resources: ['r.yaml'], patches: [{ path: 'p.yaml' }] }));
    expect(() => render(tmp)).toThrow(KustomizeError);
    expect(() => render(tmp)).toThrow(/p\.yaml: Service\/gateway\/spec\/ports/);
  });
});
