// Issue 13, fault 1 on the job routes: POST /v1/rollouts and POST /v1/distill run the shared request
// resolver before anything is queued (400 for a prompt the model cannot take, 422 for options it
// cannot honour, `param` naming the exact field), and after a model-version swap the gateway judges
// requests against the new version's facts (positions, vocabulary), not the MODELS directory's.
// The gateway runs in-process with the bundled models' directories and no worker.
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { queueName } from '@dllm/contracts';
import { PolicyRegistry } from '@dllm/rl';
import { startTestGateway } from './helpers/gateway';
import { cleanupPrefix, waitFor } from './helpers';
import { callApi } from './helpers/http';

jest.setTimeout(60_000);

const root = path.resolve(__dirname, '..');
const tag = `gwjobval${process.pid}${Date.now().toString(36)}`;
const DLLM = 'tiny-dllm';
const AR = 'tiny-ar';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
let app: NestFastifyApplication;
let base: string;
let storage: string;
let redis: Redis;

const post = (url: string, body: unknown) => callApi(base, 'sk-jobval', 'POST', url, body);

function expectError(r: { status: number; json: any }, status: number, param: string, code?: string) {
  expect({ status: r.status, param: r.json?.error?.param }).toEqual({ status, param });
  expect(r.json.error.type).toBe('invalid_request_error');
  if (code) expect(r.json.error.code).toBe(code);
}

async function jobsIn(kind: 'rollout' | 'distill', model: string): Promise<number> {
  const q = new Queue(queueName(kind, model), { prefix: tag, connection: { url: redisUrl } });
  const c = await q.getJobCounts('waiting', 'waiting-children', 'active', 'delayed', 'prioritized', 'completed', 'failed');
  await q.close();
  return Object.values(c).reduce((a, b) => a + b, 0);
}

const rollout = (model: string, prompts: { prompt: string; answer?: string }[], decoding: Record<string, unknown> = {}) => ({
  model,
  prompts: prompts.map((p) => ({ answer: '1', ...p })),
  groupSize: 2,
  decoding,
});

beforeAll(async () => {
  storage = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-jobval-'));
  redis = new Redis(redisUrl);
  // the versions this test registers are copies in the OS temp folder
  ({ app, base } = await startTestGateway({ tag, apiKey: 'sk-jobval', storageDir: storage, redisUrl, modelRoots: [os.tmpdir()] }));
});

afterAll(async () => {
  await app?.close();
  await cleanupPrefix(tag, redisUrl); // the queues, the registry, rate and batch keys: all under the tag
  await redis.quit();
  fs.rmSync(storage, { recursive: true, force: true });
});

describe('POST /v1/rollouts: what the model cannot serve is 4xx, nothing queued', () => {
  it('an empty prompt, and one longer than the model positions (counted with its tokenizer)', async () => {
    expectError(await post('/v1/rollouts', rollout(DLLM, [{ prompt: 'hi' }, { prompt: '' }])), 422, 'prompts.1.prompt');
    expectError(
      await post('/v1/rollouts', rollout(DLLM, [{ prompt: 'hi' }, { prompt: 'ok' }, { prompt: 'a b c' }, { prompt: 'a b '.repeat(400) }])),
      400,
      'prompts.3.prompt',
      'context_length_exceeded',
    );
  });

  it('a sub-block longer than the block, a diffusion policy on an AR model, stop ids outside the vocabulary', async () => {
    expectError(
      await post('/v1/rollouts', rollout(DLLM, [{ prompt: 'hi' }], { blockSize: 8, subBlockSize: 9 })),
      422,
      'decoding.subBlockSize',
      'invalid_value',
    );
    expectError(await post('/v1/rollouts', rollout(AR, [{ prompt: 'hi' }], { policy: 'fast-dllm-v2' })), 422, 'decoding.policy', 'unsupported_option');
    expectError(await post('/v1/rollouts', rollout(DLLM, [{ prompt: 'hi' }], { stopTokenIds: [1, 90] })), 422, 'decoding.stopTokenIds.1', 'invalid_token_id');
  });

  it('nothing reached a rollout queue', async () => {
    expect(await jobsIn('rollout', DLLM)).toBe(0);
    expect(await jobsIn('rollout', AR)).toBe(0);
  });
});

describe('POST /v1/distill: what the teacher cannot serve is 4xx, nothing queued', () => {
  const distill = (model: string, questions: { prompt: string }[], decoding: Record<string, unknown> = {}) => ({
    model,
    questions,
    decoding,
    onlyCorrect: false,
  });

  it('an empty question, and one longer than the model positions', async () => {
    expectError(await post('/v1/distill', distill(DLLM, [{ prompt: '' }])), 422, 'questions.0.prompt');
    expectError(
      await post('/v1/distill', distill(DLLM, [{ prompt: 'hi' }, { prompt: 'a b '.repeat(400) }])),
      400,
      'questions.1.prompt',
      'context_length_exceeded',
    );
  });

  it('a sub-block longer than the block, a diffusion policy on an AR teacher, stop ids outside the vocabulary', async () => {
    expectError(await post('/v1/distill', distill(DLLM, [{ prompt: 'hi' }], { blockSize: 8, subBlockSize: 9 })), 422, 'decoding.subBlockSize', 'invalid_value');
    expectError(await post('/v1/distill', distill(AR, [{ prompt: 'hi' }], { policy: 'entropy', threshold: 1 })), 422, 'decoding.policy', 'unsupported_option');
    expectError(await post('/v1/distill', distill(DLLM, [{ prompt: 'hi' }], { stopTokenIds: [95] })), 422, 'decoding.stopTokenIds.0', 'invalid_token_id');
  });

  it('nothing reached a distill queue', async () => {
    expect(await jobsIn('distill', DLLM)).toBe(0);
    expect(await jobsIn('distill', AR)).toBe(0);
  });
});

describe('after a model-version swap the gateway judges requests against the new version', () => {
  let v2: string;
  let v3: string;
  const copyWith = (version: string, maxPositions: number) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `gw-jobval-${version}-`));
    for (const f of fs.readdirSync(path.join(root, 'models/tiny-dllm'))) fs.copyFileSync(path.join(root, 'models/tiny-dllm', f), path.join(dir, f));
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'dllm.json'), 'utf8'));
    fs.writeFileSync(
      path.join(dir, 'dllm.json'),
      JSON.stringify({ ...m, version, architecture: { ...m.architecture, max_position_embeddings: maxPositions } }),
    );
    return dir;
  };
  afterAll(() => {
    for (const d of [v2, v3]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  // ~100 tokens: fits the MODELS directory's 256 positions, not a version with 64
  const mid = rollout(DLLM, [{ prompt: 'a b '.repeat(50) }], { maxNewTokens: 8 });

  it('a version registered by another replica (announcement): its max positions apply', async () => {
    const ok = await post('/v1/rollouts', mid);
    expect(ok.status).toBe(202);
    v2 = copyWith('jobval-2', 64);
    // what another gateway does: the registry entry + the announcement, not this gateway's route
    await new PolicyRegistry(redis, tag).register(DLLM, 'jobval-2', v2);
    const refused = await waitFor(
      async () => {
        const r = await post('/v1/rollouts', mid);
        return r.status === 202 ? null : r;
      },
      10_000,
      200,
    );
    expectError(refused, 400, 'prompts.0.prompt', 'context_length_exceeded');
    expect(refused.json.error.message).toContain('64 positions');
  });

  it('a version registered through this gateway applies to the next request', async () => {
    v3 = copyWith('jobval-3', 512);
    const reg = await post(`/v1/models/${DLLM}/versions`, { dir: v3 });
    expect(reg.status).toBe(201);
    expect((await post('/v1/rollouts', mid)).status).toBe(202);
    const long = rollout(DLLM, [{ prompt: 'a b '.repeat(100) }]); // over version 2's 64 positions, under version 3's 512
    expect((await post('/v1/rollouts', long)).status).toBe(202);
  });
});
