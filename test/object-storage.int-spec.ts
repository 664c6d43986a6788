// STORAGE_BACKEND=s3 end to end through the real store construction of both sides, against s3rver
// (test/helpers/s3rver.ts) and the test Redis: the config comes from loadConfig(env) like main()
// reads it, the gateway runs in-process with settingsFromConfig(config), and the worker side is the
// worker's own workerResultStore(config) driven by an in-test BullMQ worker (no model needed).
// Checks: a result over RESULT_MAX_BYTES lands in the bucket (Redis keeps only a pointer) and the
// gateway serves it; batch input files and the assembled batch output live in the bucket; nothing
// is written to STORAGE_DIR.
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig, type Config } from '@dllm/config';
import { GatewayClient, queueName, type GenerationResult } from '@dllm/contracts';
import { resultStorePrefix, storeGenerationResult } from '@dllm/queue';
import type { BlobStore } from '@dllm/storage';
import { hashApiKey } from '../apps/gateway/src/auth/api-keys';
import { startGateway } from '../apps/gateway/src/bootstrap';
import { settingsFromConfig } from '../apps/gateway/src/settings';
import { workerResultStore } from '../apps/worker/src/core/result-store';
import { startS3rver, type TestS3 } from './helpers/s3rver';

jest.setTimeout(60_000);

const tag = `objst${process.pid}${Date.now().toString(36)}`;
const model = `os-${tag}`;
const BUCKET = 'dllm-it';
const S3_PREFIX = `${tag}/`;
const redisUrl = () => process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

let s3: TestS3;
let storageDir: string;
let config: Config;
let app: NestFastifyApplication;
let client: GatewayClient;
let redis: Redis;
let workerRedis: Redis;
let workerStore: BlobStore;
let worker: Worker;

/** What the in-test worker returns: text of `size` chars, so the JSON crosses RESULT_MAX_BYTES when asked. */
const result = (text: string): GenerationResult => ({
  text,
  finishReason: 'length',
  usage: { promptTokens: 3, completionTokens: 4 },
  stats: { forwards: 2, tpf: 2, wallMs: 1 },
  model: { name: model, version: 'v1' },
});

beforeAll(async () => {
  s3 = await startS3rver([BUCKET]);
  storageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-objst-dir-'));
  config = loadConfig(
    {
      REDIS_URL: redisUrl(),
      QUEUE_PREFIX: tag,
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: '0',
      GATEWAY_KEY_PREFIX: `${tag}:gw:`,
      API_KEYS: `alice:${hashApiKey('sk-alice-objst')}`,
      MODELS: `${model}=/nonexistent/model`,
      BATCH_SWEEP_MS: '0',
      STORAGE_DIR: storageDir,
      RESULT_MAX_BYTES: '1024',
      STORAGE_BACKEND: 's3',
      S3_ENDPOINT: s3.endpoint,
      S3_REGION: s3.region,
      S3_BUCKET: BUCKET,
      S3_PREFIX,
      S3_ACCESS_KEY_ID: s3.accessKeyId,
      S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    },
    process.cwd(),
  );
  app = await startGateway(settingsFromConfig(config), { docsUi: false, logLevels: ['error'] });
  const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  client = new GatewayClient({ baseUrl: base, apiKey: 'sk-alice-objst' });
  redis = new Redis(redisUrl());

  // The worker side: its own store construction from the same config, answering every job of the
  // model's generation queue with a result whose size the prompt picks ('big' = over the Redis bound).
  workerRedis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  workerStore = workerResultStore(config, workerRedis);
  worker = new Worker(
    queueName('generation', model),
    async (job) => {
      const prompt = String((job.data as { prompt?: unknown }).prompt ?? '');
      const text = prompt.startsWith('big') ? `${prompt}:` + 'x'.repeat(4096) : `${prompt}:ok`;
      return storeGenerationResult(workerStore, job.queueName, job.id!, result(text));
    },
    { connection: workerRedis, prefix: tag },
  );
  await worker.waitUntilReady();
});

afterAll(async () => {
  await worker?.close();
  await app?.close();
  const q = new Queue(queueName('generation', model), { prefix: tag, connection: { url: redisUrl() } });
  await q.obliterate({ force: true }).catch(() => undefined);
  await q.close();
  if (redis) {
    for (const p of [`${tag}:*`]) {
      const keys = await redis.keys(p);
      if (keys.length) await redis.del(...keys);
    }
    await redis.quit();
  }
  await workerRedis?.quit();
  await s3?.close();
  if (storageDir) fs.rmSync(storageDir, { recursive: true, force: true });
});

async function waitJob(id: string): Promise<Record<string, any>> {
  for (let i = 0; i < 200; i++) {
    const j = await client.getJob(id);
    if (j.status === 'completed' || j.status === 'failed') return j;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`job ${id} did not finish`);
}

describe('STORAGE_BACKEND=s3 (gateway and worker stores against s3rver)', () => {
  it('builds S3 stores from the config on both sides', () => {
    expect(config.storage.backend).toBe('s3');
    expect(workerStore.kind).toBe('tiered');
  });

  it('a result over RESULT_MAX_BYTES goes to <S3_PREFIX>blobs/ (Redis keeps a pointer) and the gateway serves it', async () => {
    const big = await client.createJob({ model, prompt: 'big-one' });
    const small = await client.createJob({ model, prompt: 'small-one' });
    const [b, s] = await Promise.all([waitJob(big.id), waitJob(small.id)]);
    expect(b.status).toBe('completed');
    expect(b.result.text).toBe('big-one:' + 'x'.repeat(4096));
    expect(s.result.text).toBe('small-one:ok');

    const queue = queueName('generation', model);
    const keys = s3.keys(BUCKET, S3_PREFIX);
    expect(keys).toContain(`${S3_PREFIX}blobs/${queue}:${big.id}`);
    expect(keys).not.toContain(`${S3_PREFIX}blobs/${queue}:${small.id}`); // small results stay in Redis
    const pointer = await redis.getBuffer(`${resultStorePrefix(tag)}${queue}:${big.id}`);
    expect(pointer!.length).toBeLessThan(64);
    expect((await redis.getBuffer(`${resultStorePrefix(tag)}${queue}:${small.id}`))!.toString()).toContain('small-one:ok');
  });

  it('batch input and output files live in <S3_PREFIX>files/, nothing on STORAGE_DIR', async () => {
    const line = (id: string, prompt: string) =>
      JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/completions', body: { model, prompt, max_tokens: 4 } });
    const input = `${line('a', 'big-a')}\n${line('b', 'p-b')}\n`;
    const f = await client.uploadFile(input, 'in.jsonl');
    expect(s3.keys(BUCKET, `${S3_PREFIX}files/`)).toContain(`${S3_PREFIX}files/${f.id.slice(-2)}/${f.id}`);
    expect(await client.fileContent(f.id)).toBe(input);

    const batch = await client.createBatch({ input_file_id: f.id, endpoint: '/v1/completions', completion_window: '24h' });
    const done = await client.waitBatch(batch.id, () => {}, 100);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toMatchObject({ total: 2, completed: 2, failed: 0 });
    const out = (await client.fileContent(done.output_file_id!))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(out.map((o) => o.custom_id).sort()).toEqual(['a', 'b']);
    expect(JSON.stringify(out.find((o) => o.custom_id === 'a'))).toContain('x'.repeat(4096));
    expect(s3.keys(BUCKET, `${S3_PREFIX}files/`)).toContain(`${S3_PREFIX}files/${done.output_file_id!.slice(-2)}/${done.output_file_id}`);

    // DELETE drops the object from the bucket
    const del = await fetch(`${(await app.getUrl()).replace('[::1]', '127.0.0.1')}/v1/files/${f.id}`, {
      method: 'DELETE',
      headers: { authorization: 'Bearer sk-alice-objst' },
    });
    expect(del.status).toBe(200);
    expect(s3.keys(BUCKET, `${S3_PREFIX}files/`)).not.toContain(`${S3_PREFIX}files/${f.id.slice(-2)}/${f.id}`);

    // the volume was never used for large objects
    expect(fs.readdirSync(storageDir)).toEqual([]);
  });
});
