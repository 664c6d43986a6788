// The learner (tools/learn/learn.py) against the real gateway + worker on the bundled tiny-dllm: two LightningRL
// steps with tiny settings must register two new versions, the workers must swap to them, and the next rollout's
// trajectories must carry the new version. Then the learner's clear errors: no gateway, a rollout the gateway
// refuses, a version conflict, a directory the converter rejects; and a distillation run on a /v1/distill dataset.
// Skipped, with a message, when /usr/bin/python3 has no torch (the README says how to run it).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot, startCluster, type Cluster } from '../apps/demo/src/cluster';
import { waitFor } from './helpers';
import { callApi } from './helpers/http';

jest.setTimeout(300_000);

const ROOT = repoRoot();
const PY = '/usr/bin/python3';
const MODEL = 'tiny-dllm';
const hasTorch = (() => {
  try {
    execFileSync(PY, ['-c', 'import torch'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!hasTorch) console.warn(`test/learn.e2e-spec.ts SKIPPED: ${PY} cannot import torch (Debian: apt-get install python3-torch; .ci/run does it)`);
const maybe = hasTorch ? describe : describe.skip;

// the CLI straight from the TypeScript sources (no build needed), as the e2e apps run
const CLI = `node -r ${path.join(ROOT, 'test/gateway.register.js')} ${path.join(ROOT, 'apps/cli/src/main.ts')}`;

let cluster: Cluster;
let work: string;
const run = (args: string[], env: Record<string, string> = {}, timeoutMs = 240_000) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(PY, [path.join(ROOT, 'tools/learn/learn.py'), ...args], { cwd: ROOT, env: { ...process.env, TRAIN_THREADS: '1', ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });

const api = (method: string, url: string, body?: unknown) => callApi(cluster.gatewayUrl, cluster.apiKey, method, url, body);

const common = (out: string, extra: string[] = []) => [
  '--gateway',
  cluster.gatewayUrl,
  '--key',
  cluster.apiKey,
  '--model',
  MODEL,
  '--init',
  path.join(ROOT, 'models', MODEL),
  '--out',
  out,
  '--model-root',
  path.join(work, 'models'),
  '--cli',
  CLI,
  ...extra,
];
// tiny settings: 2 kept groups of 4 samples (6 reserve prompts: about 1 group in 4 survives the filters here),
// arith only (its worked solutions are ~40 tokens), 8-slot sub-blocks: with tiny-dllm's own default (whole
// blocks) a group's samples often share one TPF, the TPF-range filter drops every group and no step trains
const tiny = [
  '--sub-block-size',
  '8',
  '--group-size',
  '4',
  '--groups',
  '2',
  '--reserve',
  '6',
  '--max-new',
  '48',
  '--families',
  'arith',
  '--n-problems',
  '64',
  '--lr',
  '1e-4',
  '--minibatch',
  '8',
];

maybe('learner (tools/learn) against the real farm', () => {
  const prefix = `e2e-${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-learn-'));
    cluster = await startCluster({
      redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      mode: 'src',
      models: [{ name: MODEL, dir: path.join(ROOT, 'models', MODEL) }],
      workers: 1,
      // the learner writes its versions under `work` (its --model-root)
      env: { WORKER_CONCURRENCY: '4', RATE_LIMIT_REQUESTS: '100000', MODEL_ROOTS: work },
    });
  }, 240_000);

  afterAll(async () => {
    await cluster?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('runs two RL steps: new versions registered, workers swapped, the next rollout carries the new version', async () => {
    const out = path.join(work, 'rl');
    // step 1, then a second process that resumes from the checkpoint and state.json for step 2
    for (const steps of ['1', '2']) {
      const r = await run(['rl', ...common(out, [...tiny, '--steps', steps, '--version-prefix', prefix])]);
      if (r.code !== 0) throw new Error(`learn.py rl --steps ${steps} exited ${r.code}:\n${r.stderr.slice(-3000)}`);
      if (steps === '2') expect(r.stderr).toContain('resuming run');
    }
    const all = fs
      .readFileSync(path.join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    console.log(`learn.e2e step log:\n${all.map((l) => JSON.stringify(l)).join('\n')}`);
    expect(all.map((l) => l.step)).toEqual([0, 1, 2]);
    // a new run first registers its starting weights, so step 1's rollout samples the policy the learner holds
    expect(all[0]).toMatchObject({ step: 0, version: `${prefix}.0` });
    const lines = all.slice(1);
    expect(Object.keys(lines[0].versions)).toEqual([`${prefix}.0`]);
    for (const l of lines) {
      for (const k of ['accuracy', 'tpf', 'kept_groups', 'filter_reasons', 'time']) expect(l).toHaveProperty(k);
      expect(Object.keys(l.time).sort()).toEqual(['learn', 'rollout', 'weight_sync']);
      if (l.trained_samples > 0) {
        expect(l.kl).toBeGreaterThanOrEqual(0);
        expect(l.clip_frac).toBeGreaterThanOrEqual(0);
      }
    }
    // the loss ran on kept samples (tiny-dllm answers most arith problems at temperature 1, so groups are kept)
    const trained = lines.filter((l) => l.trained_samples > 0);
    expect(trained.length).toBeGreaterThan(0);
    for (const l of trained) for (const k of ['kl', 'clip_frac', 'policy_loss', 'nll', 'loss']) expect(Number.isFinite(l[k])).toBe(true);
    expect(lines[0].version).toBe(`${prefix}.1`);
    expect(lines[1].version).toBe(`${prefix}.2`);
    // step 2's rollout ran on the version step 1 registered (the staleness bound: required version)
    expect(Object.keys(lines[1].versions)).toEqual([`${prefix}.1`]);
    const listing = await api('GET', `/v1/models/${MODEL}/versions`);
    expect(listing.json.latest).toBe(`${prefix}.2`);
    expect(listing.json.data.map((v: { version: string }) => v.version)).toEqual(expect.arrayContaining([`${prefix}.1`, `${prefix}.2`]));
    // the weights changed: the registered version's directory is not the bundled one
    expect(fs.existsSync(path.join(work, 'models', `${prefix}.2`, 'model.onnx'))).toBe(true);
    // an independent rollout now: its trajectories carry the newest version
    const created = await api('POST', '/v1/rollouts', {
      model: MODEL,
      groupSize: 2,
      prompts: [{ prompt: 'Q: 12+30=?\nA:', answer: '42', verifier: { name: 'task:arith' } }],
      decoding: { maxNewTokens: 8 },
    });
    expect(created.status).toBe(202);
    await waitFor(async () => ((await api('GET', `/v1/rollouts/${created.json.id}`)).json.status === 'completed' ? true : null), 60_000, 100, 'rollout');
    const recs = (await api('GET', `/v1/rollouts/${created.json.id}/trajectories`)).text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(recs.map((x) => x.policy.version)).toEqual([`${prefix}.2`, `${prefix}.2`]);
    // resume: asking for 2 steps again does nothing more (state.json says 2 done)
    const again = await run(['rl', ...common(out, [...tiny, '--steps', '2', '--version-prefix', prefix])]);
    expect(again.code).toBe(0);
    expect(fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8').trim().split('\n')).toHaveLength(3);
  });

  it('resumes after crashes mid-read and between the checkpoint and state.json, never updating twice', async () => {
    const out = path.join(work, 'crash');
    const args = ['rl', ...common(out, [...tiny, '--steps', '1', '--version-prefix', `${prefix}-crash`])];
    const state = () => JSON.parse(fs.readFileSync(path.join(out, 'state.json'), 'utf8'));
    // 1: killed after the first stream page is on disk but before it was acknowledged
    const a = await run(args, { DLLM_LEARN_CRASH_AT: 'after-page' });
    expect(a.code).toBe(137);
    expect(state().pending.cursor).toMatch(/^\d+-\d+$/);
    // 2: resumes the same rollout from its cursor, learns, killed after the checkpoint, before state.json
    const b = await run(args, { DLLM_LEARN_CRASH_AT: 'after-checkpoint' });
    expect(b.code).toBe(137);
    expect(b.stderr).toContain('resuming run');
    expect(state().step).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'ckpt', 'progress.json'), 'utf8')).step).toBe(1);
    // 3: sees the step-1 checkpoint, does not learn again, registers it and waits for the swap
    const c = await run(args);
    if (c.code !== 0) throw new Error(`resume exited ${c.code}:\n${c.stderr.slice(-3000)}`);
    expect(c.stderr).toContain(`registered ${prefix}-crash.1: after a crash`);
    expect(c.stderr).not.toContain('"trained_samples"');
    expect(state()).toMatchObject({ step: 1, registered: true, version: `${prefix}-crash.1`, pending: null });
    const listing = await api('GET', `/v1/models/${MODEL}/versions`);
    expect(listing.json.latest).toBe(`${prefix}-crash.1`);
  });

  it('says clearly when the gateway does not answer', async () => {
    const r = await run(['rl', ...common(path.join(work, 'down'), ['--steps', '1']).map((a) => (a === cluster.gatewayUrl ? 'http://127.0.0.1:9' : a))]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('does not answer');
  });

  it('passes the gateway reason on when a rollout is refused', async () => {
    const r = await run(['rl', ...common(path.join(work, 'refused'), [...tiny, '--group-size', '1', '--steps', '1'])]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/POST \/v1\/rollouts -> HTTP 422: .*groupSize must be >= 2/);
  });

  it('reports a version conflict instead of overwriting a registered version', async () => {
    // a fresh run with the first run's version prefix: its step 1 would re-register '<prefix>.1' with other weights.
    // (A version directory another run wrote is refused at registration time too: convert_and_register.)
    const r = await run(['rl', ...common(path.join(work, 'conflict'), [...tiny, '--steps', '1', '--version-prefix', prefix, '--no-sync-probe'])]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`version conflict: ${MODEL} versions with prefix '${prefix}' already exist (${prefix}.0, ${prefix}.1, ${prefix}.2)`);
    expect(fs.existsSync(path.join(work, 'conflict', 'state.json'))).toBe(false); // refused before any step
    // the first run's version directory is untouched
    expect(JSON.parse(fs.readFileSync(path.join(work, 'models', `${prefix}.1`, 'learn-run.json'), 'utf8')).version).toBe(`${prefix}.1`);
  });

  it('reports a checkpoint the converter rejects', async () => {
    const bad = path.join(work, 'bad-ckpt');
    fs.mkdirSync(bad, { recursive: true });
    fs.writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ model_type: 'llama-but-not-really' }));
    const script = [
      'import sys, types; sys.path.insert(0, "tools/learn")',
      'import learn, farm',
      `a = types.SimpleNamespace(model_root=${JSON.stringify(path.join(work, 'models'))}, model=${JSON.stringify(MODEL)}, cli=${JSON.stringify(CLI)})`,
      `c = farm.Client(${JSON.stringify(cluster.gatewayUrl)}, ${JSON.stringify(cluster.apiKey)})`,
      'try:\n  learn.convert_and_register(a, c, sys.argv[1], sys.argv[2], "r1")\nexcept farm.FarmError as e:\n  print(e); sys.exit(3)',
    ].join('\n');
    const py = (dir: string, version: string) => {
      try {
        return { code: 0, out: execFileSync(PY, ['-c', script, dir, version], { cwd: ROOT, encoding: 'utf8' }) };
      } catch (e) {
        return { code: (e as { status: number }).status, out: String((e as { stdout: string }).stdout) };
      }
    };
    const r = py(bad, 'never-registered');
    expect(r.code).toBe(3);
    expect(r.out).toContain(`the converter rejected ${bad}`);
    expect((await api('GET', `/v1/models/${MODEL}/versions`)).json.data.map((v: { version: string }) => v.version)).not.toContain('never-registered');
    expect(fs.existsSync(path.join(work, 'models', 'never-registered'))).toBe(false);
    // another run's version directory is never overwritten or re-registered
    const other = py(path.join(work, 'rl', 'ckpt'), `${prefix}.1`);
    expect(other.code).toBe(3);
    expect(other.out).toContain(`version conflict: ${path.join(work, 'models', `${prefix}.1`)} already exists and was not written by this run (r1)`);
  });

  it('distils a /v1/distill dataset with certainty forcing and registers the result', async () => {
    const created = await api('POST', '/v1/distill', {
      model: MODEL,
      tasks: [{ family: 'arith', split: 'train', seed: 3, n: 8 }],
      decoding: { maxNewTokens: 64 },
    });
    if (created.status !== 202) throw new Error(`POST /v1/distill -> ${created.status}: ${created.text.slice(0, 500)}`);
    await waitFor(
      async () => {
        const v = (await api('GET', `/v1/distill/${created.json.id}`)).json;
        if (v.status === 'failed') throw new Error(`distill failed: ${v.failed_reason}`);
        return v.status === 'completed' ? v : null;
      },
      120_000,
      200,
      'distill',
    );
    const out = path.join(work, 'distill');
    const version = `${prefix}-cf`;
    const r = await run(['distill', ...common(out, ['--dataset', created.json.id, '--steps', '3', '--batch', '4', '--log-every', '1', '--version', version])]);
    if (r.code !== 0) throw new Error(`learn.py distill exited ${r.code}:\n${r.stderr.slice(-3000)}`);
    const lines = fs
      .readFileSync(path.join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    for (const l of lines) for (const k of ['ce', 'ce_comp', 'entropy', 'entropy_comp', 'loss']) expect(Number.isFinite(l[k])).toBe(true);
    const listing = await api('GET', `/v1/models/${MODEL}/versions`);
    expect(listing.json.data.map((v: { version: string }) => v.version)).toContain(version);
  });
});
