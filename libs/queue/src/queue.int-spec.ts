// Cancellation and result references against a real Redis (REDIS_URL), fresh prefix, cleaned after.
import { type Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Job, Queue, Worker } from 'bullmq';
import { CancelRegistry, createRedis, createResultStore, pingRedis, QueueRegistry, redactRedisUrl } from './index';
import { readGenerationResult, requestCancel, settledSnapshot, storeGenerationResult, withLease, Lease } from './index';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `tq${process.pid}${Date.now().toString(36)}`;
let redis: Redis;
let sub: Redis;
let dir: string;

beforeAll(() => {
  redis = createRedis(url, 'test');
  sub = createRedis(url, 'test-sub');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-q-'));
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  await Promise.all([redis.quit(), sub.quit()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('CancelRegistry', () => {
  it('aborts the running job named on the channel, and only that one', async () => {
    const reg = new CancelRegistry(sub, redis, prefix);
    await reg.start();
    const a = await reg.register('q', 'a');
    const b = await reg.register('q', 'b');
    expect(reg.size).toBe(2);
    const aborted = new Promise<void>((resolve) => a.signal.addEventListener('abort', () => resolve()));
    await requestCancel(redis, { prefix, queue: 'q', jobId: 'a' });
    await aborted;
    expect(a.signal.aborted).toBe(true);
    expect(b.signal.aborted).toBe(false);
    a.done();
    b.done();
    expect(reg.size).toBe(0);
    // requested before the job started here (e.g. picked up again after a stall): aborted at once
    await requestCancel(redis, { prefix, queue: 'q', jobId: 'c' });
    const c = await reg.register('q', 'c');
    expect(c.signal.aborted).toBe(true);
    c.done();
    await reg.close();
    expect(await pingRedis(redis)).toBe(true);
  });
});

describe('results by reference', () => {
  it('stores the result once and returns a small reference that reads it back', async () => {
    const store = createResultStore(redis, { queuePrefix: prefix, dir, resultMaxBytes: 1024, resultTtlSeconds: 60 });
    const result = {
      text: 'x'.repeat(50),
      finishReason: 'stop' as const,
      usage: { promptTokens: 2, completionTokens: 50 },
      stats: { forwards: 5, tpf: 10, wallMs: 3 },
      model: { name: 'm', version: '1' },
    };
    const ref = await storeGenerationResult(store, 'dllm.generation.m', 'j1', result);
    expect(ref).toMatchObject({ resultKey: 'dllm.generation.m:j1', finishReason: 'stop', stats: { forwards: 5, tpf: 10 } });
    expect(JSON.stringify(ref).length).toBeLessThan(300);
    expect(await readGenerationResult(store, 'j1', JSON.stringify(ref))).toEqual(result);
    // large results go to the shared volume
    const big = { ...result, text: 'y'.repeat(5000) };
    const ref2 = await storeGenerationResult(store, 'dllm.generation.m', 'j2', big);
    expect((await readGenerationResult(store, 'j2', ref2)).text).toHaveLength(5000);
    expect(await redis.strlen(`${prefix}:dllm-result:dllm.generation.m:j2`)).toBeLessThan(64);
    await expect(readGenerationResult(store, 'j3', { nope: 1 })).rejects.toThrow(/no result reference/);
    await expect(readGenerationResult(store, 'j3', { ...ref, resultKey: 'gone' })).rejects.toThrow(/expired or missing/);
  });
});

describe('settledSnapshot', () => {
  it('re-reads a record that was fetched before the job finished', async () => {
    const q = new Queue('snap', { connection: redis, prefix });
    const conn = createRedis(url, 'test-worker');
    const worker = new Worker('snap', async () => ({ answer: 42 }), { connection: conn, prefix, autorun: false });
    await q.add('x', {}, { jobId: 'j' });
    const stale = (await Job.fromId(q, 'j'))!;
    const finished = new Promise<void>((resolve) => worker.on('completed', () => resolve()));
    void worker.run();
    await finished;
    // the race the helper exists for: the state is new, the record read before it is not
    expect(await stale.getState()).toBe('completed');
    expect(stale.returnvalue).toBeNull();
    const { job, state } = await settledSnapshot(q, stale);
    expect(state).toBe('completed');
    expect(job.returnvalue).toEqual({ answer: 42 });
    // a record that is already current comes back as it is
    const again = await settledSnapshot(q, job);
    expect(again.job).toBe(job);
    await worker.close();
    await conn.quit();
    await q.obliterate({ force: true });
    await q.close();
  });
});

describe('withLease', () => {
  it('lets one of many concurrent callers run per period', async () => {
    let runs = 0;
    const key = `${prefix}:lease`;
    const won = await Promise.all(Array.from({ length: 5 }, () => withLease(redis, key, 200, async () => void runs++)));
    expect(won.filter(Boolean)).toHaveLength(1);
    expect(runs).toBe(1);
    expect(await withLease(redis, key, 200, async () => void runs++)).toBe(false);
    await new Promise((r) => setTimeout(r, 250)); // the lease expires: the next period's caller runs
    expect(await withLease(redis, key, 200, async () => void runs++)).toBe(true);
    expect(runs).toBe(2);
  });
});

describe('Lease (token-checked)', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it("a second holder cannot release or extend someone else's lease", async () => {
    const key = `${prefix}:lease-owner`;
    const a = await Lease.acquire(redis, key, 200);
    expect(a).not.toBeNull();
    expect(await Lease.acquire(redis, key, 200)).toBeNull();
    await sleep(250); // a's lease expires without a's knowledge; b takes it
    const b = await Lease.acquire(redis, key, 5000);
    expect(b).not.toBeNull();
    expect(await a!.extend(5000)).toBe(false);
    expect(a!.signal.aborted).toBe(true);
    expect(await a!.release()).toBe(false);
    expect(await redis.get(key)).toBe(b!.token); // b still holds it, untouched
    expect(await redis.pttl(key)).toBeGreaterThan(4000);
    expect(await b!.release()).toBe(true);
    expect(await redis.exists(key)).toBe(0);
  });

  it('a long holder keeps it by renewal, and releases it at the end when asked', async () => {
    const key = `${prefix}:lease-long`;
    let others = 0;
    const ran = await withLease(
      redis,
      key,
      150,
      async (lease) => {
        for (let i = 0; i < 6; i++) {
          await sleep(100); // 600 ms of work under a 150 ms lease
          if (await withLease(redis, key, 150, async () => void others++)) break;
        }
        expect(lease.held).toBe(true);
        expect(lease.signal.aborted).toBe(false);
      },
      { release: true },
    );
    expect(ran).toBe(true);
    expect(others).toBe(0);
    expect(await redis.exists(key)).toBe(0);
  });
});

describe('QueueRegistry', () => {
  it('one Queue per queue name, one job-options policy (catalogue defaults, retention, then the call)', async () => {
    const reg = new QueueRegistry({ connection: redis, prefix, retention: { completed: { count: 5, ageSeconds: 60 }, failed: { count: 7, ageSeconds: 120 } } });
    try {
      const a = reg.get('generation', 'm1');
      expect(reg.get('generation', 'm1')).toBe(a);
      expect(reg.get('rollout', 'm1')).not.toBe(a);
      expect(a.name).toBe('dllm.generation.m1');
      expect(reg.all()).toHaveLength(2);
      const o = reg.jobOptions('generation', { jobId: 'j1', removeOnComplete: { age: 9 } });
      expect(o).toMatchObject({ jobId: 'j1', removeOnComplete: { age: 9 }, removeOnFail: { count: 7, age: 120 } });
      const added = await a.add('generate', { x: 1 }, reg.jobOptions('generation', { jobId: 'j2' }));
      expect(added.opts.removeOnComplete).toEqual({ count: 5, age: 60 });
      // a flow's child job (not a catalogue kind): its own defaults under the same retention policy
      const child = reg.definitionOptions({ defaults: { attempts: 3, backoff: { type: 'fixed', delay: 10 } } }, { jobId: 'c1' });
      expect(child).toEqual({
        attempts: 3,
        backoff: { type: 'fixed', delay: 10 },
        removeOnComplete: { count: 5, age: 60 },
        removeOnFail: { count: 7, age: 120 },
        jobId: 'c1',
      });
      await a.obliterate({ force: true });
    } finally {
      await reg.close();
    }
  });
});

describe('redactRedisUrl', () => {
  it('hides the password (or a bare user name), keeps host, port and db', () => {
    expect(redactRedisUrl('redis://user:s3cret@10.0.0.1:6380/2')).toBe('redis://user:***@10.0.0.1:6380/2');
    expect(redactRedisUrl('rediss://:tok@h:1')).toBe('rediss://:***@h:1');
    expect(redactRedisUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
    expect(redactRedisUrl('not a url')).toBe('(unparsable REDIS_URL)');
  });
});
