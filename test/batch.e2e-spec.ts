// OpenAI Batch semantics end to end: real gateway + worker processes, real Redis, real model.
import { GatewayClient, type Batch, type BatchOutputLine } from '@dllm/contracts';
import { startCluster, type Cluster } from '../apps/demo/src/cluster';
import { fixtureModelDir } from './helpers/fixture-model';

jest.setTimeout(180_000);

const MODEL = 'tiny-dllm';
let cluster: Cluster;
let client: GatewayClient;

const jsonl = (n: number, maxTokens: number, idPrefix = 'req') =>
  Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `${idPrefix}-${i}`,
      method: 'POST',
      url: '/v1/completions',
      body: { model: MODEL, prompt: `Q: ${i}+${i}=?\nA:`, max_tokens: maxTokens, temperature: 0, block_size: 8 },
    }),
  ).join('\n') + '\n';

const lines = (text: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as BatchOutputLine);

async function until(id: string, pred: (b: Batch) => boolean, timeoutMs = 120_000): Promise<Batch> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const b = await client.getBatch(id);
    if (pred(b)) return b;
    if (Date.now() > deadline) throw new Error(`batch ${id} stuck in ${b.status} ${JSON.stringify(b.request_counts)}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

beforeAll(async () => {
  cluster = await startCluster({
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    mode: 'src',
    models: [{ name: MODEL, dir: fixtureModelDir().dir }],
    workers: 1,
    env: { WORKER_CONCURRENCY: '4', RATE_LIMIT_REQUESTS: '100000', BATCH_ALLOW_SHORT_WINDOWS: 'true', BATCH_SWEEP_MS: '300' },
  });
  client = new GatewayClient({ baseUrl: cluster.gatewayUrl, apiKey: cluster.apiKey });
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
});

describe('batches', () => {
  it('a JSONL batch completes with every custom_id answered once, in OpenAI line format', async () => {
    const f = await client.uploadFile(jsonl(12, 8), 'small.jsonl');
    const created = await client.createBatch({ input_file_id: f.id, endpoint: '/v1/completions', completion_window: '24h', metadata: { run: 'e2e' } });
    expect(['validating', 'in_progress', 'finalizing', 'completed']).toContain(created.status);
    expect(created.request_counts.total).toBe(12);
    const b = await until(created.id, (x) => x.status === 'completed');
    expect(b.request_counts).toEqual({ total: 12, completed: 12, failed: 0 });
    expect(b.metadata).toEqual({ run: 'e2e' });
    expect(b.completed_at).toBeGreaterThanOrEqual(b.in_progress_at!);
    expect(b.error_file_id).toBeNull();
    const out = lines(await client.fileContent(b.output_file_id!));
    expect(out.map((l) => l.custom_id).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `req-${i}`).sort());
    for (const l of out) {
      expect(l.error).toBeNull();
      expect(l.response!.status_code).toBe(200);
      const body = l.response!.body as { object: string; choices: { text: string }[]; usage: { completion_tokens: number } };
      expect(body.object).toBe('text_completion');
      expect(body.usage.completion_tokens).toBeGreaterThan(0);
    }
    // another key sees none of it
    const other = new GatewayClient({ baseUrl: cluster.gatewayUrl, apiKey: cluster.otherApiKey });
    await expect(other.getBatch(b.id)).rejects.toMatchObject({ status: 404 });
    await expect(other.fileContent(b.output_file_id!)).rejects.toMatchObject({ status: 404 });
  });

  it('a file with a UTF-8 BOM and CRLF lines keeps every result (issue 13 fault 2: finalization never re-parses the input)', async () => {
    const text = '\uFEFF' + jsonl(4, 4, 'bom').trimEnd().split('\n').join('\r\n') + '\r\n\r\n';
    const f = await client.uploadFile(text, 'bom.jsonl');
    const created = await client.createBatch({ input_file_id: f.id, endpoint: '/v1/completions', completion_window: '24h' });
    const b = await until(created.id, (x) => ['completed', 'failed', 'expired', 'cancelled'].includes(x.status));
    expect(b.status).toBe('completed');
    expect(b.errors).toBeNull();
    expect(b.request_counts).toEqual({ total: 4, completed: 4, failed: 0 });
    const out = lines(await client.fileContent(b.output_file_id!));
    expect(out.map((l) => l.custom_id).sort()).toEqual(['bom-0', 'bom-1', 'bom-2', 'bom-3']);
    expect(out.every((l) => l.response?.status_code === 200)).toBe(true);
  });

  it('cancel: cancelling -> cancelled, finished lines kept, the rest reported as batch_cancelled', async () => {
    // enough lines that most are still queued when the cancel arrives (tiny-dllm 1.3.0 answers in a few
    // forwards); the line that finishes at the same moment is the cancel's race (BatchService.cancel)
    const N = 1000;
    const f = await client.uploadFile(jsonl(N, 400, 'c'), 'cancel.jsonl');
    const created = await client.createBatch({ input_file_id: f.id, endpoint: '/v1/completions', completion_window: '24h' });
    await until(created.id, (x) => x.request_counts.completed >= 1);
    const c = await client.cancelBatch(created.id);
    expect(['cancelling', 'cancelled']).toContain(c.status);
    const b = await until(created.id, (x) => x.status === 'cancelled');
    expect(b.cancelling_at).not.toBeNull();
    expect(b.cancelled_at).not.toBeNull();
    const out = b.output_file_id ? lines(await client.fileContent(b.output_file_id)) : [];
    const err = b.error_file_id ? lines(await client.fileContent(b.error_file_id)) : [];
    expect(out.length).toBeGreaterThanOrEqual(1);
    expect(out.length).toBe(b.request_counts.completed);
    expect(err.length).toBeGreaterThan(0);
    expect(new Set([...out, ...err].map((l) => l.custom_id)).size).toBe(N); // every line answered exactly once
    expect(out.length + err.length).toBe(N);
    for (const e of err) expect(e.error?.code).toBe('batch_cancelled');
    expect((await client.cancelBatch(created.id)).status).toBe('cancelled'); // idempotent
  });

  it('expiry: unfinished lines become batch_expired errors, finished ones are kept', async () => {
    const f = await client.uploadFile(jsonl(200, 600, 'e'), 'expire.jsonl');
    const created = await client.createBatch({ input_file_id: f.id, endpoint: '/v1/completions', completion_window: '3s' });
    const b = await until(created.id, (x) => x.status === 'expired', 60_000);
    expect(b.expired_at).not.toBeNull();
    const out = b.output_file_id ? lines(await client.fileContent(b.output_file_id)) : [];
    const err = lines(await client.fileContent(b.error_file_id!));
    expect(err.length).toBeGreaterThan(0);
    for (const e of err) expect(e.error?.code).toBe('batch_expired');
    expect(out.length + err.length).toBe(200);
    expect(new Set([...out, ...err].map((l) => l.custom_id)).size).toBe(200);
  });
});
