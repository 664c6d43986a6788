// A group on the real engine (onnxruntime, a tiny seeded model): G samples with distinct seeds and
// temperature 1 differ, share the prompt's KV pages, and come back as complete trajectory records.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Engine } from '@dllm/engine';
import { buildTinyModel } from '@dllm/model';
import { runGroup } from './group';
import { scoreRecords } from './score';
import { trajectoryRecordSchema } from './trajectory';
import { verifiers } from './verifiers';

let dir: string;
let engine: Engine;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl-group-'));
  buildTinyModel(dir, { seed: 7, manifest: { name: 'tiny', version: 'v1' } });
  engine = await Engine.create({ modelDir: dir, intraOpThreads: 1 });
});
afterAll(async () => {
  await engine?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('runs G sampled responses of one prompt together, sharing the prompt KV', async () => {
  const prompt = 'Q: abcdefghijklmnop?\nA:'; // 22 chars: 5 full blocks of 4
  const run = await runGroup(engine, {
    rolloutId: 'r',
    groupIndex: 0,
    promptId: 'p0',
    prompt,
    answer: null,
    verifier: verifiers.bind({ name: 'regex', params: { pattern: '[aeiou]' } }),
    groupSize: 4,
    options: { temperature: 1, maxNewTokens: 12, blockSize: 4, subBlockSize: 2 },
    baseSeed: 100,
  });
  expect(run.records.map((r) => r.seed)).toEqual([100, 101, 102, 103]);
  expect(new Set(run.records.map((r) => r.responseText)).size).toBeGreaterThan(1); // sampling, not greedy
  for (const r of run.records) {
    expect(trajectoryRecordSchema.safeParse(r).success).toBe(true);
    expect(r.status === 'completed' || r.status === 'truncated').toBe(true);
    expect(r.stepMap).toHaveLength(r.responseLength);
    expect(r.tpf).toBeCloseTo(r.responseLength / r.numForwards, 12);
    expect(r.policy).toEqual({ name: 'tiny', version: 'v1', seq: 0 });
    // the exact prompt ids the engine consumed (the learner rebuilds prompt + response from them)
    expect(r.promptTokenIds).toEqual(engine.codec.encode(prompt));
    expect(r.promptTokenIds).toHaveLength(r.promptTokens);
    expect(r.correct).toBe(!r.truncated && /[aeiou]/.test(r.responseText));
  }
  // the prompt's full blocks are prefilled once and shared by the other samples
  expect(run.promptTokens).toBe(4 * run.records[0].promptTokens);
  expect(run.prefixHitTokens).toBeGreaterThanOrEqual(3 * 20);
  const { groups } = scoreRecords(run.records);
  expect(groups[0].size).toBe(4);
});
