// A 10,000-line batch stays many small Redis values (one job per line, a small batch hash), never
// one giant one; cancelling it before any worker runs removes every line and reports each one.
// The gateway runs in-process on a real Redis with no worker (nothing is generated here).
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GatewayClient } from '@dllm/contracts';
import { hashApiKey } from '../apps/gateway/src/auth/api-keys';
import { startGateway } from '../apps/gateway/src/bootstrap';

jest.setTimeout(120_000);

const LINES = 10_000;
const tag = `gwscale${process.pid}${Date.now().toString(36)}`;
const model = 'scale-model';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
let app: NestFastifyApplication;
let client: GatewayClient;
let storage: string;
let redis: Redis;

beforeAll(async () => {
  storage = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-scale-'));
  app = await startGateway(
    {
      host: '127.0.0.1',
      port: 0,
      redisUrl,
      queuePrefix: tag,
      keyPrefix: `${tag}:gw:`,
      apiKeys: [{ name: 'alice', sha256: hashApiKey('sk-scale') }],
      rateLimit: { requests: 0, windowMs: 1000 },
      bodyLimitBytes: 1 << 20,
      fileLimitBytes: 16 << 20,
      models: [{ name: model }],
      storageDir: storage,
      batch: { maxLines: 50_000, sweepMs: 0, allowShortWindows: false },
      requestTimeoutMs: 5000,
      retentionSeconds: 600,
    },
    { docsUi: false, logLevels: ['error'] },
  );
  client = new GatewayClient({ baseUrl: (await app.getUrl()).replace('[::1]', '127.0.0.1'), apiKey: 'sk-scale' });
  redis = new Redis(redisUrl);
});

afterAll(async () => {
  await app?.close();
  const q = new Queue(`dllm.generation.${model}`, { prefix: tag, connection: { url: redisUrl } });
  await q.obliterate({ force: true });
  await q.close();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${tag}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
  await redis.quit();
  fs.rmSync(storage, { recursive: true, force: true });
});

it(`a ${LINES}-line batch is ${LINES} small jobs; cancel removes them all and reports every line`, async () => {
  const body = Array.from({ length: LINES }, (_, i) =>
    JSON.stringify({ custom_id: `row-${i}`, method: 'POST', url: '/v1/completions', body: { model, prompt: `Q: ${i}*3=?\nA:`, max_tokens: 16 } }),
  ).join('\n');
  const f = await client.uploadFile(body, 'big.jsonl');
  const b = await client.createBatch({ input_file_id: f.id, endpoint: '/v1/completions', completion_window: '24h' });
  expect(b.status).toBe('in_progress');
  expect(b.request_counts.total).toBe(LINES);

  const q = new Queue(`dllm.generation.${model}`, { prefix: tag, connection: { url: redisUrl } });
  expect((await q.getJobCounts('waiting')).waiting).toBe(LINES);
  await q.close();
  // no Redis value under this deployment's prefix is large: the biggest is a job or the batch hash
  let biggest = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${tag}:*`, 'COUNT', 2000);
    cursor = next;
    const pipe = redis.pipeline();
    for (const k of keys) pipe.call('MEMORY', 'USAGE', k);
    for (const [, v] of (await pipe.exec()) ?? []) biggest = Math.max(biggest, Number(v ?? 0));
  } while (cursor !== '0');
  // the largest values are the queue's own index structures (ids only); no payload or result blob
  expect(biggest).toBeLessThan(LINES * 100);
  const batchHash = Number(await redis.call('MEMORY', 'USAGE', `${tag}:gw:batch:${b.id}`));
  expect(batchHash).toBeLessThan(4096);

  const c = await client.cancelBatch(b.id);
  expect(c.status).toBe('cancelled'); // nothing was running: every line removed at once
  expect(c.request_counts).toEqual({ total: LINES, completed: 0, failed: 0 });
  expect(c.output_file_id).toBeNull();
  const errors = (await client.fileContent(c.error_file_id!)).split('\n').filter(Boolean);
  expect(errors).toHaveLength(LINES);
  const first = JSON.parse(errors[0]);
  expect(first).toMatchObject({ custom_id: 'row-0', response: null, error: { code: 'batch_cancelled' } });
  expect(new Set(errors.map((l) => JSON.parse(l).custom_id)).size).toBe(LINES);
});
