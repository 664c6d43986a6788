// Issue 13, fault 1 and 2 at the gateway: everything the engine would refuse is answered 400/422
// with `param` (OpenAI error shape) before anything is queued, on /v1/completions, chat and
// /v1/jobs; in a batch file such lines go to the error file (not run) and the rest is accepted,
// whatever the file's BOM and line endings. The gateway runs in-process with the bundled models'
// directories (dllm.json + tokenizer.json) and no worker: a request that got queued would hang and
// time out instead of answering 4xx.
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startTestGateway } from './helpers/gateway';

jest.setTimeout(60_000);

const tag = `gwval${process.pid}${Date.now().toString(36)}`;
const DLLM = 'tiny-dllm';
const AR = 'tiny-ar';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const auth = { authorization: 'Bearer sk-val', 'content-type': 'application/json' };
const ROOT = path.resolve(__dirname, '..');
let app: NestFastifyApplication;
let base: string;
let storage: string;
let redis: Redis;

async function post(p: string, body: unknown, headers: Record<string, string> = auth) {
  const res = await fetch(base + p, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) };
}

function expectError(r: { status: number; body: any }, status: number, param: string, code?: string) {
  expect({ status: r.status, param: r.body?.error?.param }).toEqual({ status, param });
  expect(Object.keys(r.body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(r.body.error.type).toBe('invalid_request_error');
  if (code) expect(r.body.error.code).toBe(code);
}

async function queued(model: string): Promise<number> {
  const q = new Queue(`dllm.generation.${model}`, { prefix: tag, connection: { url: redisUrl } });
  const c = await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed');
  await q.close();
  return Object.values(c).reduce((a, b) => a + b, 0);
}

beforeAll(async () => {
  storage = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-val-'));
  redis = new Redis(redisUrl);
  ({ app, base } = await startTestGateway({ tag, apiKey: 'sk-val', storageDir: storage, redisUrl, readerKey: 'sk-val-reader' }));
});

afterAll(async () => {
  await app?.close();
  for (const m of [DLLM, AR]) {
    const q = new Queue(`dllm.generation.${m}`, { prefix: tag, connection: { url: redisUrl } });
    await q.obliterate({ force: true });
    await q.close();
  }
  const keys = await redis.keys(`${tag}*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
  fs.rmSync(storage, { recursive: true, force: true });
});

describe('requests the engine would refuse are 4xx at the gateway, nothing queued', () => {
  it('empty prompt: completions, chat and native jobs', async () => {
    expectError(await post('/v1/completions', { model: DLLM, prompt: '' }), 400, 'prompt', 'empty_prompt');
    expectError(await post('/v1/completions', { model: DLLM, prompt: [''] }), 400, 'prompt', 'empty_prompt');
    expectError(await post('/v1/chat/completions', { model: DLLM, messages: [{ role: 'user', content: '' }] }), 400, 'messages', 'empty_prompt');
    expectError(await post('/v1/jobs', { model: DLLM, prompt: '' }), 400, 'prompt', 'empty_prompt');
  });

  it('a sub-block longer than the block, a block out of range, and other option combinations', async () => {
    expectError(await post('/v1/completions', { model: DLLM, prompt: 'hi', block_size: 300 }), 422, 'block_size');
    expectError(
      await post('/v1/chat/completions', { model: DLLM, messages: [{ role: 'user', content: 'hi' }], block_size: 8, sub_block_size: 9 }),
      422,
      'sub_block_size',
    );
    expectError(await post('/v1/completions', { model: DLLM, prompt: 'hi', block_size: 8, sub_block_size: 16 }), 422, 'sub_block_size');
    expectError(await post('/v1/jobs', { model: DLLM, prompt: 'hi', options: { blockSize: 8, subBlockSize: 9 } }), 422, 'options.subBlockSize');
  });

  it('options the model cannot honour: a diffusion policy on an autoregressive model', async () => {
    expectError(await post('/v1/completions', { model: AR, prompt: 'hi', policy: 'entropy' }), 422, 'policy', 'unsupported_option');
    expectError(await post('/v1/completions', { model: AR, prompt: 'hi', policy: 'fast-dllm-v2' }), 422, 'policy', 'unsupported_option');
  });

  it("token ids outside the model's vocabulary", async () => {
    expectError(await post('/v1/completions', { model: DLLM, prompt: 'hi', stop_token_ids: [1, 90] }), 422, 'stop_token_ids.1', 'invalid_token_id');
  });

  it("a prompt longer than the model's positions, counted with its tokenizer", async () => {
    expectError(await post('/v1/completions', { model: DLLM, prompt: 'a b '.repeat(400) }), 400, 'prompt', 'context_length_exceeded');
    expectError(
      await post('/v1/chat/completions', { model: DLLM, messages: [{ role: 'user', content: 'a b '.repeat(400) }] }),
      400,
      'messages',
      'context_length_exceeded',
    );
  });

  it('none of the refused requests reached a queue', async () => {
    expect(await queued(DLLM)).toBe(0);
    expect(await queued(AR)).toBe(0);
  });
});

describe('batch files: one parser, per-line errors', () => {
  const ok = (id: string) =>
    JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/completions', body: { model: DLLM, prompt: `Q: ${id}`, max_tokens: 4 } });
  const bad = (id: string, body: Record<string, unknown>) =>
    JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/completions', body: { model: DLLM, max_tokens: 4, ...body } });

  async function upload(text: string | Buffer): Promise<string> {
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', new Blob([text]), 'in.jsonl');
    const res = await fetch(`${base}/v1/files`, { method: 'POST', headers: { authorization: auth.authorization }, body: form });
    expect(res.status).toBe(200);
    return ((await res.json()) as { id: string }).id;
  }

  it('a file with a UTF-8 BOM, CRLF line ends and blank lines: invalid lines are reported and not run, valid ones are queued', async () => {
    const text =
      '\uFEFF' +
      [
        ok('a'),
        '',
        bad('empty', { prompt: '' }),
        '   ',
        bad('sb9', { prompt: 'hi', block_size: 8, sub_block_size: 9 }),
        '{not json',
        ok('a'),
        bad('vocab', { prompt: 'hi', stop_token_ids: [999] }),
        ok('b'),
      ].join('\r\n') +
      '\r\n';
    const file = await upload(text);
    const r = await post('/v1/batches', { input_file_id: file, endpoint: '/v1/completions', completion_window: '24h' });
    expect(r.status).toBe(200);
    const b = r.body;
    expect(b.status).toBe('in_progress');
    expect(b.request_counts).toEqual({ total: 7, completed: 0, failed: 5 });
    const errs = b.errors.data.map((e: { code: string; param: string | null; line: number }) => [e.line, e.code, e.param]);
    expect(errs).toEqual([
      [3, 'empty_prompt', 'body.prompt'],
      [5, 'invalid_value', 'body.sub_block_size'],
      [6, 'invalid_json', null],
      [7, 'duplicate_custom_id', 'custom_id'],
      [8, 'invalid_token_id', 'body.stop_token_ids.0'],
    ]);
    // only the two valid lines became jobs, with the catalogue's payload
    const q = new Queue(`dllm.generation.${DLLM}`, { prefix: tag, connection: { url: redisUrl } });
    const jobs = await q.getJobs(['waiting']);
    await q.close();
    const mine = jobs.filter((j) => j.id!.startsWith(b.id));
    expect(mine.map((j) => j.data.batch.customId).sort()).toEqual(['a', 'b']);
    expect(mine.every((j) => typeof j.data.createdAt === 'number' && j.data.work)).toBe(true);
  });

  it('a file whose every line is invalid is refused whole (422), and bytes that are not UTF-8 too', async () => {
    const r = await post('/v1/batches', {
      input_file_id: await upload(bad('x', { prompt: '' }) + '\n'),
      endpoint: '/v1/completions',
      completion_window: '24h',
    });
    expectError(r, 422, 'input_file_id', 'invalid_input_file');
    const latin1 = Buffer.concat([Buffer.from(ok('c').slice(0, -2)), Buffer.from([0xe9]), Buffer.from('"}}\n')]);
    expectError(
      await post('/v1/batches', { input_file_id: await upload(latin1), endpoint: '/v1/completions', completion_window: '24h' }),
      422,
      'input_file_id',
      'invalid_input_file',
    );
  });
});

describe('model versions come only from the configured model roots (MODEL_ROOTS), paths only to writers', () => {
  const register = (dir: string) => post(`/v1/models/${DLLM}/versions`, { dir });

  it('a directory outside the roots is refused the same way whether or not it exists', async () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-val-outside-')); // exists, outside every root
    for (const f of fs.readdirSync(path.join(ROOT, 'models', DLLM))) fs.copyFileSync(path.join(ROOT, 'models', DLLM, f), path.join(outside, f));
    const a = await register(outside);
    const b = await register('/tmp/anything-dllm-farm-does-not-exist');
    const c = await register('relative/models/tiny-dllm');
    for (const r of [a, b, c]) expectError(r, 422, 'dir', 'dir_not_allowed');
    expect(a.body.error.message).toBe(b.body.error.message); // says nothing about which paths exist
    expect(a.body.error.message).not.toContain(outside);
    fs.rmSync(outside, { recursive: true, force: true });
  });

  it('a symbolic link inside a root that points outside it is refused too', async () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-val-target-'));
    fs.mkdirSync(path.join(storage, 'models'), { recursive: true });
    const link = path.join(storage, 'models', 'escape');
    fs.symlinkSync(outside, link);
    expectError(await register(link), 422, 'dir', 'dir_not_allowed');
    fs.rmSync(outside, { recursive: true, force: true });
  });

  it('a directory under a root registers; GET shows its path to writers only', async () => {
    const dir = path.join(storage, 'models', `${DLLM}-rv`);
    fs.mkdirSync(dir, { recursive: true });
    for (const f of fs.readdirSync(path.join(ROOT, 'models', DLLM))) fs.copyFileSync(path.join(ROOT, 'models', DLLM, f), path.join(dir, f));
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'dllm.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'dllm.json'), JSON.stringify({ ...m, version: `rv-${tag}` }));
    const r = await register(dir);
    expect(r.status).toBe(201);
    const get = async (key: string) =>
      (await (await fetch(`${base}/v1/models/${DLLM}/versions`, { headers: { authorization: `Bearer ${key}` } })).json()) as {
        data: Record<string, unknown>[];
      };
    const writer = await get('sk-val');
    const reader = await get('sk-val-reader');
    expect(writer.data.find((v) => v.version === `rv-${tag}`)?.dir).toBe(fs.realpathSync(dir));
    expect(reader.data.find((v) => v.version === `rv-${tag}`)).toBeDefined();
    expect(reader.data.every((v) => !('dir' in v))).toBe(true);
  });
});
