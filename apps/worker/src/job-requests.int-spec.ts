// The worker's backstop for rollout groups and distillation: a stored request the served model
// cannot take (as when it reached the queue before a version swap, or bypassed the gateway) fails
// at once, without retries (UnrecoverableError), naming the field and the resolver's reason, instead
// of failing sample by sample in the engine. Real engine (bundled tiny-dllm), real Redis, file store.
import { Queue, UnrecoverableError } from 'bullmq';
import { Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { distillRequestSchema, rolloutRequestSchema, rolloutStateKeys } from '@dllm/contracts';
import { Engine } from '@dllm/engine';
import { PolicyRegistry, TrajectoryStore } from '@dllm/rl';
import { FsBlobStore } from '@dllm/storage';
import { DistillRunner } from './distill/distill-runner';
import { RolloutRunner } from './rollout/rollout-runner';

jest.setTimeout(60_000);

const root = path.resolve(__dirname, '../../..');
const prefix = `wjobreq${process.pid}${Date.now().toString(36)}`;
let engine: Engine;
let redis: Redis;
let dir: string;
let store: FsBlobStore;
let queue: Queue;

beforeAll(async () => {
  engine = await Engine.create({ modelDir: path.join(root, 'models/tiny-dllm'), intraOpThreads: 1 });
  redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w-jobreq-'));
  store = new FsBlobStore({ dir });
  queue = new Queue('dllm.rollout.tiny-dllm', { connection: redis, prefix });
});

afterAll(async () => {
  await engine?.close();
  await queue?.obliterate({ force: true });
  await queue?.close();
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('a rollout group whose decoding the model cannot honour fails without retries, naming decoding.subBlockSize', async () => {
  const trajectories = new TrajectoryStore(redis, store, prefix);
  const runner = new RolloutRunner({ redis, prefix, queue, store: trajectories, registry: new PolicyRegistry(redis, prefix), engine: () => engine });
  const req = rolloutRequestSchema.parse({
    model: 'tiny-dllm',
    prompts: [{ prompt: 'hi', answer: '1' }],
    groupSize: 2,
    decoding: { blockSize: 8, subBlockSize: 9 },
  });
  await trajectories.putJson('rollouts/ro-x/request.json', req);
  await redis.hset(rolloutStateKeys(prefix, 'ro-x').state, { target: '1', total: '1', launched: '1', full: '0' });
  const run = runner.group({
    id: 'ro-x.g0',
    name: 'group',
    queueName: 'q',
    data: { rolloutId: 'ro-x', model: 'tiny-dllm', requestKey: 'rollouts/ro-x/request.json', groupIndex: 0, createdAt: 0 },
  });
  await expect(run).rejects.toThrow(UnrecoverableError);
  await expect(run).rejects.toThrow(/decoding\.subBlockSize: subBlockSize \(9\) must be <= blockSize \(8\)/);
});

it('a distillation whose question is longer than the model positions fails without retries, naming questions.1.prompt', async () => {
  const runner = new DistillRunner({ store, engine: () => engine, modelDir: path.join(root, 'models/tiny-dllm') });
  const req = distillRequestSchema.parse({ model: 'tiny-dllm', questions: [{ prompt: 'hi' }, { prompt: 'a b '.repeat(400) }], onlyCorrect: false });
  await store.put('distill/ds-x/request.json', JSON.stringify(req));
  const run = runner.process({
    id: 'ds-x',
    queueName: 'q',
    data: { distillId: 'ds-x', owner: 'o', model: 'tiny-dllm', requestKey: 'distill/ds-x/request.json', total: 2, createdAt: 0 },
  });
  await expect(run).rejects.toThrow(UnrecoverableError);
  await expect(run).rejects.toThrow(/questions\.1\.prompt: The prompt has \d+ tokens/);
});
