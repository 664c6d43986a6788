// Issue 13, fault 3: a gateway SIGKILLed during POST /v1/batches (5,000 lines) must not leave the
// batch in `validating` forever. A real gateway process takes the request and is killed while it
// enqueues; a second gateway (another replica, in-process) sweeps, takes the expired creation lease
// and finishes the creation: every line enqueued exactly once, status in_progress, within a bound.
// No worker runs (the lines stay queued); the model directory is the bundled tiny-dllm.
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { GatewayClient } from '@dllm/contracts';
import { hashApiKey } from '../apps/gateway/src/auth/api-keys';
import { startGateway } from '../apps/gateway/src/bootstrap';

jest.setTimeout(180_000);

const root = path.resolve(__dirname, '..');
const LINES = 5000;
const tag = `gwresume${process.pid}${Date.now().toString(36)}`;
const keyPrefix = `${tag}:gw:`;
const MODEL = 'tiny-dllm';
const modelDir = path.join(root, 'models/tiny-dllm');
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const KEY = 'sk-resume';
let storage: string;
let redis: Redis;
let victim: ChildProcess | undefined;
let rescuer: NestFastifyApplication | undefined;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

beforeAll(() => {
  storage = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-resume-'));
  redis = new Redis(redisUrl);
});

afterAll(async () => {
  victim?.kill('SIGKILL');
  await rescuer?.close();
  const q = new Queue(`dllm.generation.${MODEL}`, { prefix: tag, connection: { url: redisUrl } });
  await q.obliterate({ force: true });
  await q.close();
  const keys = await redis.keys(`${tag}*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
  fs.rmSync(storage, { recursive: true, force: true });
});

it('a batch whose creating gateway was SIGKILLed is finished by another replica, every line once', async () => {
  const port = await freePort();
  victim = spawn(process.execPath, ['-r', path.join(root, 'test/gateway.register.js'), path.join(root, 'apps/gateway/src/main.ts')], {
    cwd: root,
    env: {
      ...process.env,
      REDIS_URL: redisUrl,
      QUEUE_PREFIX: tag,
      GATEWAY_KEY_PREFIX: keyPrefix,
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: String(port),
      API_KEYS: `alice:${hashApiKey(KEY)}`,
      MODELS: `${MODEL}=${modelDir}`,
      STORAGE_DIR: storage,
      BATCH_SWEEP_MS: '0',
      RATE_LIMIT_REQUESTS: '100000',
      NO_COLOR: '1',
    },
    stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  for (let t = Date.now(); ;) {
    if (
      await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    if (Date.now() - t > 90_000) throw new Error('victim gateway not ready');
    await new Promise((r) => setTimeout(r, 200));
  }
  const client = new GatewayClient({ baseUrl: url, apiKey: KEY });
  const text = Array.from({ length: LINES }, (_, i) =>
    JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/completions', body: { model: MODEL, prompt: `Q: ${i}+1=?\nA:`, max_tokens: 4 } }),
  ).join('\n');
  const file = await client.uploadFile(text, 'big.jsonl');
  void client.createBatch({ input_file_id: file.id, endpoint: '/v1/completions', completion_window: '24h' }).catch(() => undefined);
  // Kill it mid-creation: once its batch exists and some (not all) lines are enqueued.
  let id = '';
  for (let t = Date.now(); ; await new Promise((r) => setTimeout(r, 5))) {
    if (Date.now() - t > 60_000) throw new Error('the creation never started');
    [id] = await redis.zrange(`${keyPrefix}batches:alice`, 0, 0);
    if (!id) continue;
    const status = await redis.hget(`${keyPrefix}batch:${id}`, 'status');
    if (status !== 'validating') throw new Error(`the creation finished (${status}) before the kill: nothing to resume`);
    if ((await redis.llen(`${tag}:dllm.generation.${MODEL}:wait`)) > 0) break; // some lines are queued
  }
  victim.kill('SIGKILL');
  await new Promise((r) => victim!.once('exit', r));
  const before = await redis.hgetall(`${keyPrefix}batch:${id}`);
  const queuedAtKill = await redis.llen(`${tag}:dllm.generation.${MODEL}:wait`);
  expect(before.status).toBe('validating');
  expect(queuedAtKill).toBeLessThan(LINES);

  const killedAt = Date.now();
  rescuer = await startGateway(
    {
      host: '127.0.0.1',
      port: 0,
      redisUrl,
      queuePrefix: tag,
      keyPrefix,
      apiKeys: [{ name: 'alice', sha256: hashApiKey(KEY) }],
      rateLimit: { requests: 0, windowMs: 1000 },
      bodyLimitBytes: 1 << 20,
      fileLimitBytes: 16 << 20,
      models: [{ name: MODEL, dir: modelDir }],
      storageDir: storage,
      batch: { maxLines: 50_000, sweepMs: 300, allowShortWindows: false },
      requestTimeoutMs: 5000,
      retentionSeconds: 600,
    },
    { docsUi: false, logLevels: ['error'] },
  );
  const rescue = new GatewayClient({ baseUrl: (await rescuer.getUrl()).replace('[::1]', '127.0.0.1'), apiKey: KEY });
  let b = await rescue.getBatch(id);
  while (b.status === 'validating') {
    expect(Date.now() - killedAt).toBeLessThan(60_000); // bounded: the creation lease (10 s) + a sweep + enqueueing
    await new Promise((r) => setTimeout(r, 200));
    b = await rescue.getBatch(id);
  }
  expect(b.status).toBe('in_progress');
  expect(b.request_counts).toEqual({ total: LINES, completed: 0, failed: 0 });
  const q = new Queue(`dllm.generation.${MODEL}`, { prefix: tag, connection: { url: redisUrl } });
  const counts = await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed');
  await q.close();
  expect(counts.waiting).toBe(LINES); // every line once (deterministic job ids: re-adding a chunk is a no-op)
  // eslint-disable-next-line no-console
  console.log(`killed after ${queuedAtKill}/${LINES} lines enqueued; resumed to in_progress ${Date.now() - killedAt} ms after the kill`);
});
