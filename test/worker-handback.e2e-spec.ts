// Shutdown hand-back for every job kind, and POST /v1/distill/:id/cancel, against a real gateway,
// real worker processes, real Redis and real ONNX models (the bundled tiny-dllm for distillation;
// the fixture model, which never stops early, for rollout groups of known length).
//  - a worker sent SIGTERM while a distill job or a rollout group runs stops it at the drain timeout,
//    gives the job back to the queue (not failed, no attempt used) and exits 0, without the
//    onnxruntime abort ('terminate called'); a second worker then completes the job with every
//    row / trajectory exactly once;
//  - cancelling a distillation: 404 for unknown or another key's ids, a queued one is removed
//    without running, a running one stops at its next chunk; status `cancelled`, idempotent.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Job, Queue } from 'bullmq';
import { queueName, rolloutGroupJobId } from '@dllm/contracts';
import { redisOptionsFromUrl } from '@dllm/queue';
import {
  BUNDLED_MODEL_DIR,
  cleanupPrefix,
  ensureBuild,
  freshPrefix,
  redisUrl,
  startWorkerProcess,
  waitFor,
  writeFixtureModel,
  type AppProcess,
} from './helpers';
import { startTestGateway, type TestGateway } from './helpers/gateway';
import { callApi } from './helpers/http';

jest.setTimeout(300_000);

const prefix = freshPrefix('hb');
const KEY = 'sk-handback-owner';
const OTHER = 'sk-handback-other';
const DLLM = 'tiny-dllm';
const FIXTURE = 'fixture';
let gw: TestGateway;
let storageDir: string;
let fixtureDir: string;
const workers: AppProcess[] = [];

const api = (method: string, url: string, body?: unknown, key = KEY) => callApi(gw.base, key, method, url, body);

async function worker(model: string, dir: string, name: string, extra: Record<string, string> = {}) {
  const w = await startWorkerProcess({
    redisUrl: redisUrl(),
    prefix,
    model: { name: model, dir },
    storageDir,
    name,
    extra: { WORKER_DRAIN_TIMEOUT_MS: '400', ...extra },
  });
  workers.push(w);
  return w;
}

const distillView = (id: string) => api('GET', `/v1/distill/${id}`).then((r) => r.json);

/** A distillation long enough to be running when the test acts on it (the bundled teacher, many questions). */
const longDistill = (n: number, seed: number) => ({
  model: DLLM,
  tasks: [{ family: 'arith', n, seed }],
  decoding: { maxNewTokens: 32 },
  onlyCorrect: false,
  concurrency: 2,
});

beforeAll(async () => {
  ensureBuild(['dist/apps/worker/src/main.js']);
  storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-hb-store-'));
  fixtureDir = writeFixtureModel({ name: FIXTURE });
  gw = await startTestGateway({
    tag: prefix,
    apiKey: KEY,
    readerKey: OTHER,
    storageDir,
    redisUrl: redisUrl(),
    models: [
      { name: DLLM, dir: BUNDLED_MODEL_DIR },
      { name: FIXTURE, dir: fixtureDir },
    ],
  });
});

afterAll(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  await gw?.app.close();
  await cleanupPrefix(prefix);
  for (const d of [storageDir, fixtureDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

describe('POST /v1/distill/:id/cancel', () => {
  it('404s unknown and foreign ids, removes a queued job without running it, stops a running one; idempotent', async () => {
    await worker(DLLM, BUNDLED_MODEL_DIR, 'hb-d0');
    expect((await api('POST', '/v1/distill/ds-00000000-0000-4000-8000-000000000000/cancel')).status).toBe(404);
    expect((await api('POST', '/v1/distill/nope/cancel')).status).toBe(404);

    const a = (await api('POST', '/v1/distill', longDistill(400, 1))).json.id as string;
    await waitFor(async () => (await distillView(a)).progress.done > 0, 120_000, 50, 'the first distillation to run');
    // one distill job at a time per worker: the second waits in the queue
    const b = (await api('POST', '/v1/distill', longDistill(4, 2))).json.id as string;
    expect((await distillView(b)).status).toBe('queued');
    expect((await api('POST', `/v1/distill/${b}/cancel`, undefined, OTHER)).status).toBe(404);

    const cb = await api('POST', `/v1/distill/${b}/cancel`);
    expect(cb.status).toBe(200);
    expect(cb.json).toMatchObject({ id: b, object: 'distillation', status: 'cancelled', progress: { done: 0, total: 4 } });
    const queue = new Queue(queueName('distill', DLLM), { connection: redisOptionsFromUrl(redisUrl()), prefix });
    try {
      expect(await Job.fromId(queue, b)).toBeUndefined(); // removed: no worker will take it
    } finally {
      await queue.close();
    }
    const again = await api('POST', `/v1/distill/${b}/cancel`);
    expect([again.status, again.json.status]).toEqual([200, 'cancelled']);
    expect((await distillView(b)).status).toBe('cancelled');

    const ca = await api('POST', `/v1/distill/${a}/cancel`);
    expect(ca.status).toBe(200);
    expect(['cancelling', 'cancelled']).toContain(ca.json.status);
    const stopped = await waitFor(
      async () => {
        const v = await distillView(a);
        return v.status === 'cancelled' ? v : null;
      },
      60_000,
      50,
      'the running distillation to stop',
    );
    expect(stopped.progress.done).toBeLessThan(400);
    expect(stopped.failed_reason).toBeNull();
    expect(stopped.result).toBeNull();
    const againA = await api('POST', `/v1/distill/${a}/cancel`);
    expect([againA.status, againA.json.status]).toEqual([200, 'cancelled']);
    // a cancel is not an attempt to retry: it stays cancelled
    expect((await distillView(a)).status).toBe('cancelled');
    await workers.pop()!.kill('SIGTERM');
  });
});

describe('SIGTERM during a job: hand-back, clean exit, completed once by another worker', () => {
  it('distill: the job goes back to the queue and the next worker writes every row once', async () => {
    const n = 80;
    const w1 = await worker(DLLM, BUNDLED_MODEL_DIR, 'hb-d1');
    const id = (await api('POST', '/v1/distill', longDistill(n, 3))).json.id as string;
    await waitFor(async () => (await distillView(id)).progress.done > 0, 120_000, 50, 'the distillation to run');
    const code = await w1.kill('SIGTERM');
    expect(w1.output()).not.toMatch(/terminate called/);
    expect(w1.output()).toMatch(/handing the remaining jobs back/);
    expect(code).toBe(0);
    const queue = new Queue(queueName('distill', DLLM), { connection: redisOptionsFromUrl(redisUrl()), prefix });
    try {
      const job = (await Job.fromId(queue, id))!;
      expect(await job.getState()).toBe('waiting');
      expect(job.attemptsMade).toBe(0);
    } finally {
      await queue.close();
    }

    await worker(DLLM, BUNDLED_MODEL_DIR, 'hb-d2');
    const view = await waitFor(
      async () => {
        const v = await distillView(id);
        if (v.status === 'failed') throw new Error(v.failed_reason);
        return v.status === 'completed' ? v : null;
      },
      240_000,
      100,
      'the distillation to complete on the second worker',
    );
    const r = view.result;
    expect(r.kept + r.dropped.incorrect + r.dropped.truncated + r.dropped.failed).toBe(n);
    expect(view.progress).toEqual({ done: n, total: n, kept: r.kept });
    expect(r.kept).toBeGreaterThan(0);
    const rows = (await api('GET', `/v1/distill/${id}/files/arith-train.jsonl`)).text
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { id: string });
    expect(rows).toHaveLength(r.kept);
    expect(new Set(rows.map((x) => x.id)).size).toBe(rows.length);
  });

  it('rollout: the running groups go back to the queue and the next worker writes groups x groupSize trajectories once', async () => {
    const w1 = await worker(FIXTURE, fixtureDir, 'hb-f1', { WORKER_CONCURRENCY: '4' });
    const groups = 2;
    const groupSize = 2;
    const created = await api('POST', '/v1/rollouts', {
      model: FIXTURE,
      groupSize,
      prompts: Array.from({ length: groups }, (_, i) => ({ prompt: `Q: ${i}+1=?\nA:`, answer: String(i + 1) })),
      verifier: { name: 'numeric' },
      sampling: { temperature: 1, seed: 11 },
      // the fixture model never stops: every sample runs maxNewTokens one token per forward
      decoding: { maxNewTokens: 2048, threshold: 1 },
    });
    expect(created.status).toBe(202);
    const id = created.json.id as string;
    await waitFor(async () => (await api('GET', `/v1/rollouts/${id}`)).json.status === 'running', 120_000, 50, 'a group to run');
    const code = await w1.kill('SIGTERM');
    expect(w1.output()).not.toMatch(/terminate called/);
    expect(w1.output()).toMatch(/handing the remaining jobs back/);
    expect(code).toBe(0);
    const queue = new Queue(queueName('rollout', FIXTURE), { connection: redisOptionsFromUrl(redisUrl()), prefix });
    try {
      for (let g = 0; g < groups; g++) {
        const job = (await Job.fromId(queue, rolloutGroupJobId(id, g)))!;
        expect(['waiting', 'prioritized']).toContain(await job.getState());
        expect(job.attemptsMade).toBe(0);
      }
    } finally {
      await queue.close();
    }

    await worker(FIXTURE, fixtureDir, 'hb-f2', { WORKER_CONCURRENCY: '4' });
    const view = await waitFor(
      async () => {
        const v = (await api('GET', `/v1/rollouts/${id}`)).json;
        if (v.status === 'failed') throw new Error(v.failed_reason);
        return v.status === 'completed' ? v : null;
      },
      240_000,
      100,
      'the rollout to complete on the second worker',
    );
    expect(view.result.samples).toBe(groups * groupSize);
    const recs = (await api('GET', `/v1/rollouts/${id}/trajectories`)).text
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { groupIndex: number; sampleIndex: number; status: string });
    expect(recs).toHaveLength(groups * groupSize);
    expect(new Set(recs.map((r) => `${r.groupIndex}:${r.sampleIndex}`)).size).toBe(groups * groupSize);
    // the handed-back attempt left nothing behind: every sample ran to its end on the second worker
    expect(recs.filter((r) => r.status === 'aborted')).toEqual([]);
  });
});
