// Issue 13, fault 2 (second half): finalization never turns completed work into nothing. The file
// store is broken for real (its folder replaced by a plain file, so every write fails) while a batch
// finalizes: the assembly is logged, retried with backoff by the sweeper, and succeeds once the store
// is back; a store that never comes back ends in `failed` with the cause in `errors`, not silently.
// In-process gateway, real Redis, no worker (the batches are cancelled, so their lines are reported).
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GatewayClient, type Batch } from '@dllm/contracts';
import { hashApiKey } from '../apps/gateway/src/auth/api-keys';
import { startGateway } from '../apps/gateway/src/bootstrap';

jest.setTimeout(90_000);

const tag = `gwfin${process.pid}${Date.now().toString(36)}`;
const model = 'fin-model';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
let app: NestFastifyApplication;
let client: GatewayClient;
let storage: string;

const filesDir = () => path.join(storage, 'files');
function breakStore() {
  fs.renameSync(filesDir(), `${filesDir()}.ok`);
  fs.writeFileSync(filesDir(), 'not a folder');
}
function repairStore() {
  fs.rmSync(filesDir(), { force: true });
  fs.renameSync(`${filesDir()}.ok`, filesDir());
}

async function until(id: string, pred: (b: Batch) => boolean, timeoutMs: number, seen: Set<string>): Promise<Batch> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const b = await client.getBatch(id);
    seen.add(b.status);
    if (pred(b)) return b;
    if (Date.now() > deadline) throw new Error(`batch ${id} stuck in ${b.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function newBatch(prefix: string): Promise<string> {
  const text = ['a', 'b', 'c']
    .map((x) => JSON.stringify({ custom_id: `${prefix}-${x}`, method: 'POST', url: '/v1/completions', body: { model, prompt: 'hi', max_tokens: 4 } }))
    .join('\n');
  const f = await client.uploadFile(text, `${prefix}.jsonl`);
  return (await client.createBatch({ input_file_id: f.id, endpoint: '/v1/completions', completion_window: '24h' })).id;
}

beforeAll(async () => {
  storage = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-fin-'));
  app = await startGateway(
    {
      host: '127.0.0.1',
      port: 0,
      redisUrl,
      queuePrefix: tag,
      keyPrefix: `${tag}:gw:`,
      apiKeys: [{ name: 'alice', sha256: hashApiKey('sk-fin') }],
      rateLimit: { requests: 0, windowMs: 1000 },
      bodyLimitBytes: 1 << 20,
      fileLimitBytes: 1 << 20,
      models: [{ name: model }],
      storageDir: storage,
      batch: { maxLines: 100, sweepMs: 200, allowShortWindows: false },
      requestTimeoutMs: 5000,
      retentionSeconds: 600,
    },
    { docsUi: false, logLevels: [] },
  );
  client = new GatewayClient({ baseUrl: (await app.getUrl()).replace('[::1]', '127.0.0.1'), apiKey: 'sk-fin' });
});

afterAll(async () => {
  await app?.close();
  const q = new Queue(`dllm.generation.${model}`, { prefix: tag, connection: { url: redisUrl } });
  await q.obliterate({ force: true });
  await q.close();
  const r = new Redis(redisUrl);
  const keys = await r.keys(`${tag}*`);
  if (keys.length) await r.del(...keys);
  await r.quit();
  fs.rmSync(storage, { recursive: true, force: true });
});

it('a failing assembly is retried and succeeds once the store is back: every line reported', async () => {
  const id = await newBatch('retry');
  breakStore();
  const seen = new Set<string>();
  try {
    await client.cancelBatch(id);
    await until(id, (b) => b.status === 'finalizing', 10_000, seen);
    await new Promise((r) => setTimeout(r, 1500)); // at least one retry fails too
    expect((await client.getBatch(id)).status).toBe('finalizing');
  } finally {
    repairStore();
  }
  const b = await until(id, (x) => !['cancelling', 'finalizing'].includes(x.status), 30_000, seen);
  expect(seen.has('failed')).toBe(false);
  expect(b.status).toBe('cancelled');
  const errs = (await client.fileContent(b.error_file_id!))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { custom_id: string; error: { code: string } });
  expect(errs.map((l) => [l.custom_id, l.error.code]).sort()).toEqual([
    ['retry-a', 'batch_cancelled'],
    ['retry-b', 'batch_cancelled'],
    ['retry-c', 'batch_cancelled'],
  ]);
});

it('a store that never comes back: failed after the retries, with the cause in errors', async () => {
  const id = await newBatch('dead');
  breakStore();
  try {
    await client.cancelBatch(id);
    const b = await until(id, (x) => x.status === 'failed', 60_000, new Set());
    expect(b.errors!.data[0]).toMatchObject({ code: 'finalization_failed', line: null });
    expect(b.errors!.data[0].message).toMatch(/could not be written after 5 attempts/);
  } finally {
    repairStore();
  }
});
