// The worker as a real process against a real Redis: starts paused until the model is loaded,
// per-block progress, results by reference, concurrent jobs batched by the engine, remote cancel
// with partial output, bad jobs fail without retry, SIGTERM hands unfinished jobs back.
import { Job, Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { queueName, type GenerationPayload } from '@dllm/contracts';
import { createResultStore, readGenerationResult, redisOptionsFromUrl, requestCancel } from '@dllm/queue';
import type { BlobStore } from '@dllm/storage';
import { cleanupPrefix, ensureBuild, freshPrefix, redisUrl, startApp, startWorkerProcess, fixtureModelDir, waitFor, type AppProcess } from './helpers';

jest.setTimeout(120_000);

const prefix = freshPrefix('wk');
const MODEL = 'e2e-model';
const QUEUE = queueName('generation', MODEL);
let model: { dir: string; bundled: boolean };
let storageDir: string;
let worker: (AppProcess & { healthUrl: string }) | undefined;
let queue: Queue;
let events: QueueEvents;
let redis: Redis;
let store: BlobStore;

const payload = (prompt: string, options: Record<string, unknown> = {}): GenerationPayload => ({
  owner: 'alice',
  model: MODEL,
  prompt,
  options,
  stream: false,
  endpoint: 'native',
  createdAt: Date.now(),
});
const metric = async (name: string) => {
  const text = await (await fetch(`${worker!.healthUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.split(' ').pop()) : NaN;
};

beforeAll(async () => {
  ensureBuild(['dist/apps/worker/src/main.js']);
  model = fixtureModelDir(); // long jobs of known length, whatever the bundled model does
  storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-wk-store-'));
  const connection = redisOptionsFromUrl(redisUrl());
  queue = new Queue(QUEUE, { connection, prefix });
  queue.setMaxListeners(64); // job.waitUntilFinished() adds a 'closing' listener per waiting job; tests wait on 16 at once
  events = new QueueEvents(QUEUE, { connection, prefix });
  await events.waitUntilReady();
  redis = new Redis(redisUrl());
  store = createResultStore(redis, { queuePrefix: prefix, dir: storageDir, resultMaxBytes: 262144, resultTtlSeconds: 600 });
});

afterAll(async () => {
  await worker?.kill('SIGKILL');
  await events?.close();
  await queue?.close();
  await redis?.quit();
  await cleanupPrefix(prefix);
  fs.rmSync(storageDir, { recursive: true, force: true });
  if (!model.bundled) fs.rmSync(model.dir, { recursive: true, force: true });
});

describe('worker boot failures', () => {
  it('exits 2 naming every bad variable, and 1 when the model cannot load', async () => {
    const bad = await startApp(
      'dist/apps/worker/src/main.js',
      { WORKER_CONCURRENCY: 'lots', REDIS_URL: 'http://nope', WORKER_PORT: '0' },
      { waitReady: false },
    );
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toMatch(/WORKER_CONCURRENCY: expected an integer/);
    expect(bad.output()).toMatch(/REDIS_URL: expected a URL like redis:\/\//);
    const missing = await startWorkerProcess(
      { redisUrl: redisUrl(), prefix, model: { name: MODEL, dir: path.join(storageDir, 'no-model') }, storageDir },
      { waitReady: false },
    );
    expect(await missing.exited).toBe(1);
    expect(missing.output()).toMatch(/cannot load model e2e-model from .*no-model/);
  });
});

describe('worker process', () => {
  it('takes no job before its model is loaded, then runs queued jobs with per-block progress', async () => {
    // queued before any worker exists: the worker must pick it up once ready
    const early = await queue.add('generate', payload('12+3=', { maxNewTokens: 24 }), { jobId: 'early' });
    worker = await startWorkerProcess({
      redisUrl: redisUrl(),
      prefix,
      model: { name: MODEL, dir: model.dir },
      storageDir,
      extra: { WORKER_CONCURRENCY: '16' },
    });
    const ready = await (await fetch(`${worker.healthUrl}/readyz`)).json();
    expect(ready).toEqual({ status: 'ok', checks: { model: 'ok', queues: 'ok', redis: 'ok' } });
    expect(worker.output()).toMatch(/loaded from .* in \d+ ms[\s\S]*taking jobs/);

    const progress: any[] = [];
    events.on('progress', ({ jobId, data }) => jobId === 'p1' && progress.push(data));
    const job = await queue.add('generate', payload('7*8=', { maxNewTokens: 32, blockSize: 8 }), { jobId: 'p1' });
    const ref = await job.waitUntilFinished(events, 30_000);
    const r = await readGenerationResult(store, 'p1', ref);
    expect(r.usage.completionTokens).toBeGreaterThan(0);
    expect(r.stats.forwards).toBeGreaterThan(0);
    expect(r.model.name).toBeTruthy();
    // the return value is a reference, not the text
    expect(JSON.stringify(ref)).not.toContain(r.text.length > 8 ? r.text : '\u0000');
    await waitFor(() => progress.length >= Math.ceil(r.usage.completionTokens / 8), 5000, 20, 'progress events');
    expect(progress.map((p) => p.blocks)).toEqual(progress.map((_, i) => i + 1));
    expect(progress.map((p) => p.text).join('')).toBe(r.text);
    expect(progress[progress.length - 1].completionTokens).toBe(r.usage.completionTokens);

    await early.waitUntilFinished(events, 30_000);
    expect((await readGenerationResult(store, 'early', (await Job.fromId(queue, 'early'))!.returnvalue)).usage.completionTokens).toBeGreaterThan(0);
  });

  it('batches concurrent jobs together in the engine', async () => {
    const rowsBefore = await metric('dllm_engine_forwards');
    const jobs = await queue.addBulk(
      Array.from({ length: 16 }, (_, i) => ({ name: 'generate', data: payload(`${i}+${i}=`, { maxNewTokens: 64 }), opts: { jobId: `c${i}` } })),
    );
    const refs = await Promise.all(jobs.map((j) => j.waitUntilFinished(events, 60_000)));
    const results = await Promise.all(refs.map((ref, i) => readGenerationResult(store, `c${i}`, ref)));
    const sumForwards = results.reduce((a, r) => a + r.stats.forwards, 0);
    const engineForwards = (await metric('dllm_engine_forwards')) - rowsBefore;
    // 16 jobs decoded one after another would need sumForwards engine forwards; batched, far fewer
    expect(engineForwards).toBeLessThan(sumForwards / 2);
    expect(await metric('dllm_engine_mean_batch_rows')).toBeGreaterThan(1);
  });

  it('stops a running job on remote cancel at a block boundary and keeps the partial output', async () => {
    let firstProgress!: () => void;
    const started = new Promise<void>((r) => (firstProgress = r));
    events.on('progress', ({ jobId }) => jobId === 'cx' && firstProgress());
    const job = await queue.add('generate', payload('5-2=', { maxNewTokens: 4096, threshold: 1 }), { jobId: 'cx' });
    await started;
    await requestCancel(redis, { prefix, queue: QUEUE, jobId: 'cx' });
    const r = await readGenerationResult(store, 'cx', await job.waitUntilFinished(events, 30_000));
    expect(r.finishReason).toBe('cancelled');
    expect(r.usage.completionTokens).toBeGreaterThan(0);
    expect(r.usage.completionTokens).toBeLessThan(4096);
    expect(r.text.length).toBeGreaterThan(0);
  });

  it('fails invalid jobs at once with a readable reason (no retry)', async () => {
    const bad = await queue.add('generate', { ...payload('x'), options: { subBlockSize: 64, blockSize: 8 } }, { jobId: 'bad1', attempts: 3 });
    await expect(bad.waitUntilFinished(events, 20_000)).rejects.toThrow(/subBlockSize \(64\) must be <= blockSize \(8\)/);
    const wrong = await queue.add('generate', { ...payload('x'), prompt: 42 } as never, { jobId: 'bad2', attempts: 3 });
    await expect(wrong.waitUntilFinished(events, 20_000)).rejects.toThrow(/invalid generation payload: prompt/);
    const other = await queue.add('generate', { ...payload('x'), model: 'other' }, { jobId: 'bad3', attempts: 3 });
    await expect(other.waitUntilFinished(events, 20_000)).rejects.toThrow(/reached the worker of 'e2e-model'/);
    // the gateway's request resolver, run again by the worker for a job that did not come through it
    const empty = await queue.add('generate', { ...payload('x'), prompt: '' }, { jobId: 'bad4', attempts: 3 });
    await expect(empty.waitUntilFinished(events, 20_000)).rejects.toThrow(/invalid request: prompt: The prompt is empty/);
    for (const id of ['bad1', 'bad2', 'bad3', 'bad4']) expect((await Job.fromId(queue, id))!.attemptsMade).toBe(1);
  });

  it('on SIGTERM drains, then hands unfinished jobs back to the queue', async () => {
    await worker!.kill('SIGKILL');
    worker = await startWorkerProcess({
      redisUrl: redisUrl(),
      prefix,
      model: { name: MODEL, dir: model.dir },
      storageDir,
      extra: { WORKER_DRAIN_TIMEOUT_MS: '300' },
    });
    let firstProgress!: () => void;
    const started = new Promise<void>((r) => (firstProgress = r));
    events.on('progress', ({ jobId }) => jobId === 'hb' && firstProgress());
    await queue.add('generate', payload('9+9=', { maxNewTokens: 4096, threshold: 1 }), { jobId: 'hb' });
    await started;
    const code = await worker!.kill('SIGTERM');
    expect(worker!.output()).toMatch(/handing the remaining jobs back/);
    expect(code).toBe(0); // drained: a clean exit, not the re-raised signal
    const job = (await Job.fromId(queue, 'hb'))!;
    expect(await job.getState()).toBe('waiting');
    expect(job.attemptsMade).toBe(0);
    worker = undefined;
    await queue.remove('hb');
  });
});
