// The pending-work gauge against a real Redis: job counts weighted by expected forward passes, with
// the TPF measured from completed jobs. Own prefix, obliterated after.
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { expectedForwards, workOf } from '@dllm/contracts';
import { createRedis } from './connection';
import { PendingWorkEstimator } from './pending-work';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `tpw${process.pid}${Date.now().toString(36)}`;
let redis: Redis;
let q: Queue;

beforeAll(() => {
  redis = createRedis(url, 'test');
  q = new Queue('dllm.generation.m', { connection: redis, prefix });
});
afterAll(async () => {
  await q.obliterate({ force: true });
  await q.close();
  await redis.quit();
});

test('weights waiting, prioritized, delayed and active jobs by their expected forwards at the measured TPF', async () => {
  const est = new PendingWorkEstimator(() => [{ queue: q, model: 'm' }]);
  expect(await est.read()).toEqual([{ queue: 'dllm.generation.m', model: 'm', forwards: 0, jobs: 0 }]);

  // two completed ar jobs: 40 tokens in 40 forwards and 60 in 60 -> TPF 1; two fast-dllm-v2 ones: 100 tokens in 40 forwards -> 2.5
  const conn = createRedis(url, 'test-worker');
  const results: Record<string, unknown> = {
    a1: { usage: { completionTokens: 40 }, stats: { forwards: 40 } },
    a2: { usage: { completionTokens: 60 }, stats: { forwards: 60 } },
    d1: { usage: { completionTokens: 30 }, stats: { forwards: 10 } },
    d2: { usage: { completionTokens: 70 }, stats: { forwards: 30 } },
  };
  const worker = new Worker('dllm.generation.m', async (job) => results[job.id!], { connection: conn, prefix, autorun: false });
  await q.add('g', { work: workOf({ policy: 'ar' }, 1) }, { jobId: 'a1' });
  await q.add('g', { work: workOf({ policy: 'ar' }, 1) }, { jobId: 'a2' });
  await q.add('g', { work: workOf({ policy: 'fast-dllm-v2' }, 1) }, { jobId: 'd1' });
  await q.add('g', { work: workOf({ policy: 'fast-dllm-v2' }, 1) }, { jobId: 'd2' });
  let done = 0;
  const all = new Promise<void>((resolve) => worker.on('completed', () => ++done === 4 && resolve()));
  void worker.run();
  await all;
  await worker.close();
  await conn.quit();
  expect(Object.fromEntries(await est.measuredTpf(q))).toEqual({ ar: 1, 'fast-dllm-v2': 2.5, '*': 200 / 140 });

  // pending: 3 waiting ar jobs of 64 tokens, 1 prioritized rollout-like job of 8 sequences x 100
  // tokens (fast-dllm-v2), 1 delayed job, and one job without a work record (an aggregating parent)
  for (let i = 0; i < 3; i++) await q.add('g', { work: workOf({ policy: 'ar', maxNewTokens: 64 }, 1) });
  await q.add('g', { work: workOf({ policy: 'fast-dllm-v2', maxNewTokens: 100 }, 8) }, { priority: 5 });
  await q.add('g', { work: workOf({ policy: 'ar', maxNewTokens: 10 }, 1) }, { delay: 60_000 });
  await q.add('parent', { rolloutId: 'x' }, { delay: 60_000 });
  const want = 3 * expectedForwards(workOf({ policy: 'ar', maxNewTokens: 64 }, 1), 1) + 8 * (1 + 100 / 2.5) + (1 + 10) + 0;
  expect(want).toBe(3 * 65 + 8 * 41 + 11);
  const [r] = await est.read();
  expect(r).toEqual({ queue: 'dllm.generation.m', model: 'm', forwards: want, jobs: 6 });

  // a policy never seen completing takes the model-wide TPF; a sample smaller than the queue scales up
  await q.add('g', { work: workOf({ policy: 'entropy', maxNewTokens: 20 }, 1) });
  const small = new PendingWorkEstimator(() => [{ queue: q, model: 'm' }], { sampleSize: 1 });
  const [s] = await small.read();
  expect(s.jobs).toBe(7);
  expect(s.forwards).toBeGreaterThan(0);
  const [full] = await est.read();
  expect(full.forwards).toBe(Math.round(want + 1 + 20 / (200 / 140)));
});

test('an active job counts only the forwards it has left, from its progress', async () => {
  const aq = new Queue('dllm.generation.active', { connection: redis, prefix });
  const conn = createRedis(url, 'test-worker2');
  const est = new PendingWorkEstimator(() => [{ queue: aq, model: 'm' }]);
  let release!: () => void;
  const hold = new Promise<void>((r) => (release = r));
  let started!: () => void;
  const running = new Promise<void>((r) => (started = r));
  const worker = new Worker(
    'dllm.generation.active',
    async (job) => {
      await job.updateProgress({ blocks: 1, completionTokens: 30, forwards: 30, text: '' });
      started();
      await hold;
      return null;
    },
    { connection: conn, prefix },
  );
  await aq.add('g', { work: workOf({ policy: 'ar', maxNewTokens: 119 }, 1) }); // 120 forwards expected at TPF 1
  await running;
  const [r] = await est.read();
  expect(r).toMatchObject({ jobs: 1, forwards: 90 });
  release();
  await worker.close();
  await conn.quit();
  await aq.obliterate({ force: true });
  await aq.close();
});
