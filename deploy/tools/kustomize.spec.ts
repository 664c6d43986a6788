// The renderer must do what kustomize does for the fields deploy/k8s uses, or the validation tests
// check something other than what `kubectl apply -k` applies. Small fixtures in a temp dir.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hasKubectl, kubectlKustomize } from './kubectl';
import { KustomizeError, applyJson6902, render, splitImage } from './kustomize';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-kustomize-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(rel: string, text: string) {
  const p = path.join(tmp, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
}

const DEPLOY = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  selector:
    matchLabels: {app: a}
  template:
    metadata:
      labels: {app: a}
    spec:
      containers:
        - name: main
          image: example.org/app:1.0.0
          envFrom:
            - configMapRef: {name: cfg}
          env:
            - name: A
              value: "1"
            - name: B
              value: "2"
          volumeMounts:
            - {name: data, mountPath: /data}
      volumes:
        - name: data
          emptyDir: {}
`;

function base() {
  write(
    'base/kustomization.yaml',
    `namespace: ns1
resources: [deploy.yaml]
configMapGenerator:
  - name: cfg
    literals: [X=1, Y=2]
`,
  );
  write('base/deploy.yaml', DEPLOY);
}

describe('render', () => {
  it('base: namespace, generator with hash suffix, references rewritten', () => {
    base();
    const objs = render(path.join(tmp, 'base'));
    const cm = objs.find((o) => o.kind === 'ConfigMap')!;
    expect(cm.metadata.name).toMatch(/^cfg-[0-9a-f]{10}$/);
    expect(cm.metadata.namespace).toBe('ns1');
    const d = objs.find((o) => o.kind === 'Deployment')!;
    expect(d.metadata.namespace).toBe('ns1');
    expect(d.spec.template.spec.containers[0].envFrom[0].configMapRef.name).toBe(cm.metadata.name);
  });

  it('overlay: strategic merge by name, $patch delete, JSON6902, images, replicas, generator merge', () => {
    base();
    write(
      'ov/kustomization.yaml',
      `resources: [../base]
images:
  - name: example.org/app
    newName: example.org/app-gpu
    newTag: 2.0.0
replicas:
  - name: app
    count: 3
configMapGenerator:
  - name: cfg
    behavior: merge
    literals: [Y=3]
patches:
  - path: p.yaml
  - target: {kind: Deployment, name: app}
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/args
        value: [--x]
`,
    );
    write(
      'ov/p.yaml',
      `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  template:
    spec:
      containers:
        - name: main
          env:
            - name: B
              value: "20"
            - name: C
              value: "3"
          volumeMounts:
            - mountPath: /data
              $patch: delete
      volumes:
        - name: data
          $patch: delete
`,
    );
    const objs = render(path.join(tmp, 'ov'));
    const d = objs.find((o) => o.kind === 'Deployment')!;
    const c = d.spec.template.spec.containers[0];
    expect(c.image).toBe('example.org/app-gpu:2.0.0');
    expect(d.spec.replicas).toBe(3);
    // kustomize's order (checked against `kubectl kustomize` v5.5): patch items first, then the rest
    expect(c.env).toEqual([
      { name: 'B', value: '20' },
      { name: 'C', value: '3' },
      { name: 'A', value: '1' },
    ]);
    expect(c.volumeMounts).toEqual([]);
    expect(d.spec.template.spec.volumes).toEqual([]);
    expect(c.args).toEqual(['--x']);
    const cm = objs.find((o) => o.kind === 'ConfigMap')!;
    expect(cm.data).toEqual({ X: '1', Y: '3' });
    // a content change changes the name, so pods roll
    const baseName = render(path.join(tmp, 'base')).find((o) => o.kind === 'ConfigMap')!.metadata.name;
    expect(cm.metadata.name).not.toBe(baseName);
    expect(c.envFrom[0].configMapRef.name).toBe(cm.metadata.name);
  });

  it('secretGenerator from an env file, base64 data, replace behavior; whole-object $patch delete', () => {
    base();
    write(
      'base/kustomization.yaml',
      `namespace: ns1
resources: [deploy.yaml]
secretGenerator:
  - name: keys
    literals: [K=]
`,
    );
    write(
      'ov/kustomization.yaml',
      `resources: [../base]
secretGenerator:
  - name: keys
    behavior: replace
    envs: [keys.env]
patches:
  - path: del.yaml
`,
    );
    write('ov/keys.env', '# comment\nK=abc\n');
    write('ov/del.yaml', 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n$patch: delete\n');
    const objs = render(path.join(tmp, 'ov'));
    expect(objs.map((o) => o.kind)).toEqual(['Secret']);
    expect(Buffer.from(objs[0].data.K, 'base64').toString()).toBe('abc');
    expect(objs[0].type).toBe('Opaque');
  });

  it.each([
    ['unsupported field', 'resources: [d.yaml]\ncommonAnnotations: {a: b}\n', /field 'commonAnnotations' is not supported/],
    ['missing resource', 'resources: [nope.yaml]\n', /resource 'nope.yaml' does not exist/],
    [
      'patch without target match',
      'resources: [d.yaml]\npatches:\n  - patch: |-\n      apiVersion: v1\n      kind: Service\n      metadata: {name: x}\n',
      /matches nothing/,
    ],
    [
      'merge without base generator',
      'resources: [d.yaml]\nconfigMapGenerator:\n  - name: c\n    behavior: merge\n    literals: [A=1]\n',
      /no base generator defines it/,
    ],
    ['image entry that matches nothing', 'resources: [d.yaml]\nimages:\n  - name: other/app\n    newTag: "1"\n', /matches no container/],
    ['duplicate object', 'resources: [d.yaml, d2.yaml]\n', /defined twice/],
  ])('refuses %s', (_what, kustomization, err) => {
    write('k/d.yaml', DEPLOY);
    write('k/d2.yaml', DEPLOY);
    write('k/kustomization.yaml', kustomization);
    expect(() => render(path.join(tmp, 'k'))).toThrow(KustomizeError);
    expect(() => render(path.join(tmp, 'k'))).toThrow(err);
  });
});

describe('helpers', () => {
  it('JSON6902 add/replace/remove/move/copy/test (RFC 6902), and errors on missing paths and failed tests', () => {
    const o: any = { spec: { list: [1, 2], n: 1, a: { x: 1 } } };
    applyJson6902(
      o,
      [
        { op: 'add', path: '/spec/list/-', value: 3 },
        { op: 'replace', path: '/spec/n', value: 2 },
        { op: 'remove', path: '/spec/list/0' },
      ],
      't',
    );
    expect(o).toEqual({ spec: { list: [2, 3], n: 2, a: { x: 1 } } });
    applyJson6902(
      o,
      [
        { op: 'test', path: '/spec/n', value: 2 },
        { op: 'copy', from: '/spec/a', path: '/spec/b' },
        { op: 'move', from: '/spec/list/1', path: '/spec/list/0' },
        { op: 'move', from: '/spec/a', path: '/spec/c' },
      ],
      't',
    );
    expect(o).toEqual({ spec: { list: [3, 2], n: 2, b: { x: 1 }, c: { x: 1 } } });
    o.spec.b.x = 5; // a copy, not a shared reference
    expect(o.spec.c.x).toBe(1);
    expect(() => applyJson6902(o, [{ op: 'replace', path: '/spec/missing', value: 1 }], 't')).toThrow(
      /t: JSON6902 operation 0 \(replace \/spec\/missing\): OPERATION_PATH_UNRESOLVABLE/,
    );
    expect(() => applyJson6902(o, [{ op: 'test', path: '/spec/n', value: 3 }], 't')).toThrow(/TEST_OPERATION_FAILED/);
    expect(() => applyJson6902(o, [{ op: 'move', from: '/nope', path: '/b' }], 't')).toThrow(KustomizeError);
    expect(() => applyJson6902(o, [{ op: 'frobnicate', path: '/b' }], 't')).toThrow(/OPERATION_OP_INVALID/);
    expect(() => applyJson6902(o, { op: 'add' }, 't')).toThrow(/a list of operations/);
  });

  it('JSON6902 move, copy and test in a kustomization render as kubectl kustomize does', () => {
    write('k/d.yaml', DEPLOY);
    write(
      'k/kustomization.yaml',
      `resources: [d.yaml]
patches:
  - target: {kind: Deployment, name: app}
    patch: |-
      - op: test
        path: /spec/template/spec/containers/0/name
        value: main
      - op: copy
        from: /spec/template/spec/containers/0/env/0
        path: /spec/template/spec/containers/0/env/-
      - op: move
        from: /spec/template/spec/containers/0/env/1
        path: /spec/template/spec/containers/0/env/0
      - op: move
        from: /spec/replicas
        path: /spec/minReadySeconds
`,
    );
    const d = render(path.join(tmp, 'k'))[0];
    const c = d.spec.template.spec.containers[0];
    expect(c.env).toEqual([
      { name: 'B', value: '2' },
      { name: 'A', value: '1' },
      { name: 'A', value: '1' },
    ]);
    expect(d.spec.replicas).toBeUndefined();
    expect(d.spec.minReadySeconds).toBe(1);
    if (hasKubectl()) expect(kubectlKustomize(path.join(tmp, 'k'))[0]).toEqual(d);
    write(
      'k/kustomization.yaml',
      `resources: [d.yaml]
patches:
  - target: {kind: Deployment, name: app}
    patch: |-
      - op: test
        path: /spec/replicas
        value: 2
`,
    );
    expect(() => render(path.join(tmp, 'k'))).toThrow(/JSON6902 operation 0 \(test \/spec\/replicas\): TEST_OPERATION_FAILED/);
  });

  it('splitImage handles registries with ports, tags and digests', () => {
    expect(splitImage('localhost:5000/app:1.2')).toEqual({ repo: 'localhost:5000/app', tag: '1.2', digest: undefined });
    expect(splitImage('localhost:5000/app')).toEqual({ repo: 'localhost:5000/app', digest: undefined });
    expect(splitImage('app@sha256:ab')).toEqual({ repo: 'app', digest: 'sha256:ab' });
  });
});
