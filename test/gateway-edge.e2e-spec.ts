// The gateway's HTTP edge against a real Redis, no worker needed: auth, isolation, limits, every
// kind of malformed input -> 4xx in OpenAI's error shape (never a 5xx), files, batch validation,
// health and metrics. The gateway runs in-process here; generation e2e runs real processes.
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GatewayClient, GatewayError } from '@dllm/contracts';
import { hashApiKey } from '../apps/gateway/src/auth/api-keys';
import { startGateway } from '../apps/gateway/src/bootstrap';

const tag = `gwedge${process.pid}${Date.now().toString(36)}`;
const model = `edge-${tag}`;
const prefix = `${tag}:`;
let app: NestFastifyApplication;
let base: string;
let storage: string;

const alice = { authorization: 'Bearer sk-alice-edge' };
const bob = { authorization: 'Bearer sk-bob-edge' };
const dave = { authorization: 'Bearer sk-dave-edge' };
const erin = { authorization: 'Bearer sk-erin-edge' };
const json = { 'content-type': 'application/json' };

async function call(method: string, p: string, opts: { headers?: Record<string, string>; body?: string | FormData } = {}) {
  const res = await fetch(base + p, { method, headers: opts.headers, body: opts.body });
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body, headers: res.headers };
}

function expectApiError(r: { status: number; body: any }, status: number, message?: RegExp) {
  expect(r.status).toBe(status);
  expect(Object.keys(r.body ?? {})).toEqual(['error']);
  expect(Object.keys(r.body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof r.body.error.message).toBe('string');
  expect(typeof r.body.error.type).toBe('string');
  if (message) expect(r.body.error.message).toMatch(message);
}

const line = (id: string, body: Record<string, unknown> = { model, prompt: 'hi', max_tokens: 4 }) =>
  JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/completions', body });

beforeAll(async () => {
  storage = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-edge-'));
  app = await startGateway(
    {
      host: '127.0.0.1',
      port: 0,
      redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      queuePrefix: tag,
      keyPrefix: prefix,
      apiKeys: [
        { name: 'alice', sha256: hashApiKey('sk-alice-edge') },
        { name: 'bob', sha256: hashApiKey('sk-bob-edge') },
        { name: 'carol', sha256: hashApiKey('sk-carol-edge') },
        // Limited keys: dave may only use files and batches, erin only generate.
        { name: 'dave', sha256: hashApiKey('sk-dave-edge'), scopes: ['batch'] },
        { name: 'erin', sha256: hashApiKey('sk-erin-edge'), scopes: ['generate'] },
      ],
      rateLimit: { requests: 100, windowMs: 60_000 },
      bodyLimitBytes: 8 * 1024,
      fileLimitBytes: 64 * 1024,
      models: [{ name: model }],
      storageDir: storage,
      batch: { maxLines: 5, sweepMs: 0, allowShortWindows: false },
      requestTimeoutMs: 5000,
      retentionSeconds: 600,
    },
    { docsUi: false, logLevels: ['error'] },
  );
  base = await app.getUrl();
  base = base.replace('[::1]', '127.0.0.1');
});

afterAll(async () => {
  await app?.close();
  const q = new Queue(`dllm.generation.${model}`, { prefix: tag, connection: { url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' } });
  await q.obliterate({ force: true });
  await q.close();
  const r = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const keys = await r.keys(`${prefix}*`);
  if (keys.length) await r.del(...keys);
  await r.quit();
  fs.rmSync(storage, { recursive: true, force: true });
});

describe('gateway HTTP edge', () => {
  it('serves liveness, readiness and Prometheus metrics without a key', async () => {
    expect((await call('GET', '/healthz')).body).toEqual({ status: 'ok' });
    expect((await call('GET', '/readyz')).body).toEqual({ status: 'ok', checks: { redis: 'ok' } });
    const m = await call('GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.body).toContain(`dllm_queue_jobs{queue="dllm.generation.${model}",state="waiting"} 0`);
    expect(m.body).toContain('dllm_tokens_total');
    for (const kind of ['generation', 'rollout', 'distill']) {
      expect(m.body).toContain(`dllm_pending_forward_passes{queue="dllm.${kind}.${model}",model="${model}"} 0`);
    }
  });

  it('reports queued work in expected forward passes (no worker here, no completed job: TPF 1)', async () => {
    const created = await call('POST', '/v1/jobs', {
      headers: { ...alice, ...json },
      body: JSON.stringify({ model, prompt: 'hi', options: { policy: 'ar', maxNewTokens: 99 } }),
    });
    expect(created.status).toBe(202);
    const m = await call('GET', '/metrics');
    expect(m.body).toContain(`dllm_pending_forward_passes{queue="dllm.generation.${model}",model="${model}"} 100`);
    expect(m.body).toContain(`dllm_queue_jobs{queue="dllm.generation.${model}",state="waiting"} 1`);
    expect((await call('POST', `/v1/jobs/${created.body.id}/cancel`, { headers: alice })).status).toBe(200);
    expect((await call('GET', '/metrics')).body).toContain(`dllm_pending_forward_passes{queue="dllm.generation.${model}",model="${model}"} 0`);
  });

  it('401 without or with a wrong key', async () => {
    expectApiError(await call('GET', '/v1/models'), 401, /Missing API key/);
    expectApiError(await call('GET', '/v1/models', { headers: { authorization: 'Bearer nope' } }), 401, /Incorrect API key/);
    expect((await call('GET', '/v1/models', { headers: alice })).body.data[0].id).toBe(model);
  });

  it("403 insufficient_scope for a key without the route family's scope; 2xx where it has it; ownership stays 404", async () => {
    const forbidden = (r: { status: number; body: any }, scope: string) => {
      expectApiError(r, 403, new RegExp(`lacks the scope '${scope.replace('+', '\\+')}'`));
      expect(r.body.error).toMatchObject({ type: 'permission_error', code: 'insufficient_scope', param: null });
    };
    const post = (p: string, headers: Record<string, string>, body: unknown = {}) =>
      call('POST', p, { headers: { ...headers, ...json }, body: JSON.stringify(body) });
    // dave: batch only. Refused before the body is even looked at (an empty body is a 403, not a 422).
    forbidden(await post('/v1/completions', dave, { model, prompt: 'x' }), 'generate');
    forbidden(await post('/v1/chat/completions', dave), 'generate');
    forbidden(await post('/v1/jobs', dave), 'generate');
    forbidden(await call('GET', '/v1/jobs/gen-missing', { headers: dave }), 'generate');
    forbidden(await post('/v1/rollouts', dave), 'rollout');
    forbidden(await call('GET', '/v1/rollouts/ro-missing', { headers: dave }), 'rollout');
    forbidden(await post('/v1/distill', dave), 'distill');
    forbidden(await post(`/v1/models/${model}/versions`, dave, { dir: '/tmp' }), 'models:write');
    const r = await post(`/v1/models/${model}/versions`, dave);
    expect(r.body.error.message).toMatch(/POST \/v1\/models\/:name\/versions \(its scopes: batch\)/);
    expect((await call('GET', '/v1/models', { headers: dave })).status).toBe(200); // any key
    expect((await call('GET', `/v1/models/${model}/versions`, { headers: dave })).status).toBe(200);
    const d = new GatewayClient({ baseUrl: base, apiKey: 'sk-dave-edge' });
    const f = await d.uploadFile(`${line('a')}\n`, 'd.jsonl');
    expect((await call('GET', `/v1/files/${f.id}`, { headers: dave })).status).toBe(200);
    expect((await call('GET', '/v1/batches', { headers: dave })).status).toBe(200);
    // erin: generate only.
    forbidden(await call('GET', '/v1/files', { headers: erin }), 'batch');
    forbidden(await call('GET', `/v1/files/${f.id}/content`, { headers: erin }), 'batch');
    forbidden(await post('/v1/batches', erin, { input_file_id: f.id, endpoint: '/v1/completions', completion_window: '24h' }), 'batch');
    forbidden(await call('DELETE', `/v1/files/${f.id}`, { headers: erin }), 'batch');
    const job = await post('/v1/jobs', erin, { model, prompt: 'hi', options: { maxNewTokens: 4 } });
    expect(job.status).toBe(202);
    expect((await call('GET', `/v1/jobs/${job.body.id}`, { headers: erin })).status).toBe(200);
    // A scope never widens ownership: alice (every scope) still gets 404 for erin's job, dave's file.
    expectApiError(await call('GET', `/v1/jobs/${job.body.id}`, { headers: alice }), 404, /No job/);
    expectApiError(await call('GET', `/v1/files/${f.id}`, { headers: alice }), 404);
    expect((await call('POST', `/v1/jobs/${job.body.id}/cancel`, { headers: erin })).status).toBe(200);
    // Unknown keys are still 401, not 403.
    expectApiError(await post('/v1/rollouts', { authorization: 'Bearer sk-nobody' }), 401);
  });

  it('malformed completions get 4xx with a message, never a 5xx', async () => {
    const post = (body: string, headers: Record<string, string> = json) => call('POST', '/v1/completions', { headers: { ...alice, ...headers }, body });
    expectApiError(await post('{"model":'), 400, /JSON/);
    expectApiError(await post('[1,2]'), 400, /JSON object/);
    expectApiError(await post('"str"'), 400);
    expectApiError(await post('{}'), 422, /model/);
    expectApiError(await post(JSON.stringify({ model, prompt: 'x', temperature: 9 })), 422, /temperature/);
    expectApiError(await post(JSON.stringify({ model, prompt: 'x', n: 3 })), 422, /n/);
    expectApiError(await post(JSON.stringify({ model, prompt: 'x', block_sise: 8 })), 422, /block_sise/);
    expectApiError(await post(JSON.stringify({ model, prompt: 'x', block_size: 'big' })), 422, /block_size/);
    expectApiError(await post(JSON.stringify({ model: 'nope', prompt: 'x' })), 404, /model 'nope' does not exist/);
    expectApiError(await post(JSON.stringify({ model, prompt: 'x'.repeat(20_000) })), 413, /too large/);
    expectApiError(await post('a=b', { 'content-type': 'application/x-www-form-urlencoded' }), 415, /application\/json/);
    expectApiError(await post('<x/>', { 'content-type': 'application/xml' }), 415);
    const chat = (b: unknown) => call('POST', '/v1/chat/completions', { headers: { ...alice, ...json }, body: JSON.stringify(b) });
    expectApiError(await chat({ model, messages: [] }), 422, /messages/);
    expectApiError(await chat({ model, messages: [{ role: 'wizard', content: 'x' }] }), 422, /role/);
    expectApiError(await call('GET', '/v1/nothing-here', { headers: alice }), 404, /Unknown route/);
    expectApiError(await call('GET', '/v1/jobs/gen-missing', { headers: alice }), 404, /No job/);
    expectApiError(await call('GET', '/v1/jobs/bad:id', { headers: alice }), 404);
    expectApiError(await call('POST', '/v1/jobs', { headers: { ...alice, ...json }, body: JSON.stringify({ model, prompt: 1 }) }), 422, /prompt/);
  });

  it('files: upload, owner isolation (404 for other keys), content, limits', async () => {
    const c = new GatewayClient({ baseUrl: base, apiKey: 'sk-alice-edge' });
    const f = await c.uploadFile(`${line('a')}\n${line('b')}\n`, 'in.jsonl');
    expect(f).toMatchObject({ object: 'file', purpose: 'batch', filename: 'in.jsonl', status: 'processed' });
    expect(await c.fileContent(f.id)).toBe(`${line('a')}\n${line('b')}\n`);
    expectApiError(await call('GET', `/v1/files/${f.id}`, { headers: bob }), 404);
    expectApiError(await call('GET', `/v1/files/${f.id}/content`, { headers: bob }), 404);
    const list = await call('GET', '/v1/files', { headers: bob });
    expect(list.body.data).toEqual([]);
    // The bytes live in the file store (STORAGE_DIR/files) with the retention as expiry; DELETE drops them.
    const onDisk = path.join(storage, 'files', f.id.slice(-2), f.id);
    expect(fs.readFileSync(onDisk, 'utf8')).toBe(`${line('a')}\n${line('b')}\n`);
    expect(Number(fs.readFileSync(`${onDisk}.expires`, 'utf8'))).toBeGreaterThan(Date.now() + 590_000);
    const content = await call('GET', `/v1/files/${f.id}/content`, { headers: alice });
    expect(content.headers.get('content-length')).toBe(String(f.bytes));
    expect((await call('DELETE', `/v1/files/${f.id}`, { headers: alice })).body).toEqual({ id: f.id, object: 'file', deleted: true });
    expect(fs.existsSync(onDisk)).toBe(false);
    expectApiError(await call('GET', `/v1/files/${f.id}/content`, { headers: alice }), 404);
    const form = new FormData();
    form.set('purpose', 'fine-tune');
    form.set('file', new Blob(['x']), 'x.jsonl');
    expectApiError(await call('POST', '/v1/files', { headers: alice, body: form }), 422, /purpose/);
    const noFile = new FormData();
    noFile.set('purpose', 'batch');
    expectApiError(await call('POST', '/v1/files', { headers: alice, body: noFile }), 422, /file/);
    const big = new FormData();
    big.set('purpose', 'batch');
    big.set('file', new Blob(['x'.repeat(100 * 1024)]), 'big.jsonl');
    expectApiError(await call('POST', '/v1/files', { headers: alice, body: big }), 413);
    expectApiError(await call('POST', '/v1/files', { headers: { ...alice, ...json }, body: '{}' }), 415, /multipart/);
  });

  it('batches: bad lines are reported per line; a file with no valid line is a 422 naming the lines; others cannot see the file', async () => {
    const c = new GatewayClient({ baseUrl: base, apiKey: 'sk-alice-edge' });
    const create = async (content: string, extra: Record<string, unknown> = {}) => {
      const f = await c.uploadFile(content, 'b.jsonl');
      return call('POST', '/v1/batches', {
        headers: { ...alice, ...json },
        body: JSON.stringify({ input_file_id: f.id, endpoint: '/v1/completions', completion_window: '24h', ...extra }),
      });
    };
    // A bad line beside a valid one is reported per line (error file, batch `errors`), not run.
    const mixed = await create(`${line('a')}\n{oops\n${line('a')}\n`);
    expect(mixed.status).toBe(200);
    expect(mixed.body.errors.data.map((e: { line: number; code: string }) => [e.line, e.code])).toEqual([
      [2, 'invalid_json'],
      [3, 'duplicate_custom_id'],
    ]);
    expectApiError(await create('{oops\n'), 422, /line 1: invalid JSON/);
    expectApiError(
      await create(
        JSON.stringify({ custom_id: 'x', method: 'POST', url: '/v1/chat/completions', body: { model, messages: [{ role: 'user', content: 'x' }] } }),
      ),
      422,
      /differs from the batch endpoint/,
    );
    expectApiError(await create(line('s', { model, prompt: 'x', stream: true })), 422, /stream/);
    expectApiError(await create(line('t', { model, prompt: 'x', temperature: -1 })), 422, /temperature/);
    expectApiError(await create(line('m', { model: 'ghost', prompt: 'x' })), 422, /ghost/);
    expectApiError(await create(Array.from({ length: 6 }, (_, i) => line(`l${i}`)).join('\n')), 422, /more than 5/);
    expectApiError(await create('\n\n'), 422, /empty|no requests/);
    expectApiError(await create(line('w'), { completion_window: '5m' }), 422, /completion_window/);
    expectApiError(await create(line('w'), { completion_window: 'soon' }), 422, /completion_window/);
    const f = await c.uploadFile(line('a'), 'b.jsonl');
    expectApiError(
      await call('POST', '/v1/batches', {
        headers: { ...bob, ...json },
        body: JSON.stringify({ input_file_id: f.id, endpoint: '/v1/completions', completion_window: '24h' }),
      }),
      404,
      /file/,
    );
    expectApiError(await call('GET', '/v1/batches/batch_0000', { headers: alice }), 404, /No batch/);
    expectApiError(await call('POST', '/v1/batches/batch_0000/cancel', { headers: alice }), 404);
    await expect(c.getBatch('batch_0000')).rejects.toBeInstanceOf(GatewayError);
  });

  it('rate limits per key with 429 and Retry-After (other keys unaffected)', async () => {
    let last;
    for (let i = 0; i < 105; i++) last = await call('GET', '/v1/models', { headers: { authorization: 'Bearer sk-carol-edge' } });
    expectApiError(last!, 429, /Rate limit/);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await call('GET', '/v1/models', { headers: bob })).status).toBe(200);
  });
});
