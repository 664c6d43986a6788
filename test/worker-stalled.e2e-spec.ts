// A worker killed with SIGKILL mid-generation loses no job: two real worker processes on one queue,
// the one holding the job is killed, BullMQ's stalled-job recovery gives the job to the other, which
// finishes it. Exactly one result is stored and the job completes once. (The engine runs ORT in a
// worker thread, so the survivor's event loop keeps renewing its locks while it decodes.)
import { Job, Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { queueName } from '@dllm/contracts';
import { createResultStore, readGenerationResult, redisOptionsFromUrl, resultStorePrefix } from '@dllm/queue';
import { cleanupPrefix, ensureBuild, freshPrefix, redisUrl, startWorkerProcess, fixtureModelDir, waitFor, type AppProcess } from './helpers';

jest.setTimeout(120_000);

const prefix = freshPrefix('stl');
const MODEL = 'stall-model';
const QUEUE = queueName('generation', MODEL);
let model: { dir: string; bundled: boolean };
let storageDir: string;
const workers: (AppProcess & { healthUrl: string })[] = [];

beforeAll(() => {
  ensureBuild(['dist/apps/worker/src/main.js']);
  model = fixtureModelDir(); // long jobs of known length, whatever the bundled model does
  storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-stl-store-'));
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.kill('SIGKILL')));
  await cleanupPrefix(prefix);
  fs.rmSync(storageDir, { recursive: true, force: true });
  if (!model.bundled) fs.rmSync(model.dir, { recursive: true, force: true });
});

it('a job whose worker is SIGKILLed mid-generation is finished by another worker, with one result', async () => {
  // Short locks so the test does not wait 30 s for the stalled check.
  const extra = { WORKER_LOCK_DURATION_MS: '2000', WORKER_STALLED_INTERVAL_MS: '1000', WORKER_CONCURRENCY: '4' };
  const env = (name: string) => ({ redisUrl: redisUrl(), prefix, model: { name: MODEL, dir: model.dir }, storageDir, name, extra });
  const [a, b] = await Promise.all([startWorkerProcess(env('wa')), startWorkerProcess(env('wb'))]);
  workers.push(a, b);
  const byName: Record<string, AppProcess> = { wa: a, wb: b };

  const connection = redisOptionsFromUrl(redisUrl());
  const queue = new Queue(QUEUE, { connection, prefix });
  const events = new QueueEvents(QUEUE, { connection, prefix });
  const redis = new Redis(redisUrl());
  try {
    await events.waitUntilReady();
    let completions = 0;
    events.on('completed', ({ jobId }) => jobId === 'long' && completions++);
    const job = await queue.add(
      'generate',
      { owner: 'alice', model: MODEL, prompt: '3+4=', options: { maxNewTokens: 1536, threshold: 1 }, stream: false, endpoint: 'native', createdAt: Date.now() },
      { jobId: 'long', attempts: 1 },
    );
    // mid-generation: some blocks committed, recorded by whichever worker took it
    const holder = await waitFor(
      async () => {
        const j = await Job.fromId(queue, 'long');
        const p = j?.progress as { blocks?: number } | undefined;
        return j?.processedBy && p?.blocks && p.blocks >= 2 ? j.processedBy : undefined;
      },
      30_000,
      20,
      'the job to be mid-generation',
    );
    const victim = byName[holder];
    const survivor = holder === 'wa' ? b : a;
    expect(victim).toBeDefined();
    expect(await victim.kill('SIGKILL')).toBe('SIGKILL');

    const ref = await job.waitUntilFinished(events, 90_000);
    const finished = (await Job.fromId(queue, 'long'))!;
    expect(finished.processedBy).toBe(holder === 'wa' ? 'wb' : 'wa');
    expect(finished.stalledCounter).toBeGreaterThanOrEqual(1);
    expect(finished.attemptsMade).toBe(1);

    const store = createResultStore(redis, { queuePrefix: prefix, dir: storageDir, resultMaxBytes: 262144, resultTtlSeconds: 600 });
    const r = await readGenerationResult(store, 'long', ref);
    expect(r.finishReason).toBe('length');
    expect(r.usage.completionTokens).toBe(1536);
    // exactly one stored result, and the job completed once
    expect(await redis.keys(`${resultStorePrefix(prefix)}*`)).toEqual([`${resultStorePrefix(prefix)}${QUEUE}:long`]);
    await new Promise((res) => setTimeout(res, 500));
    expect(completions).toBe(1);
    const text = await (await fetch(`${survivor.healthUrl}/metrics`)).text();
    expect(text).toMatch(/dllm_worker_jobs_total\{kind="generation",model="stall-model",outcome="length"\} 1/);
  } finally {
    await events.close();
    await queue.close();
    await redis.quit();
  }
});
