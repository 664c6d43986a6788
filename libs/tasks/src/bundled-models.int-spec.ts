// The bundled models (models/tiny-ar, models/tiny-dllm) against the task suite, through the real engine
// and onnxruntime: their tokenizer is the suite's, their special ids match, and they solve held-out
// problems. The bars sit well below the accuracy measured in models/*/TRAINING.md (so a different ORT
// build cannot flip them) but far above what a broken conversion or a wrong mask could reach.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Engine } from '@dllm/engine';
import { EOS_ID, MASK_ID, PAD_ID, buildTokenizerJson, delimiterTokenIds, problems, verifyResponse, type Problem } from './index';

const ROOT = path.resolve(__dirname, '../../..');
const held = (family: string, n: number) => problems(family, { split: 'test', seed: 0, n, unique: true });

async function accuracy(engine: Engine, items: Problem[], options: Record<string, unknown>) {
  const results = await Promise.all(items.map((p) => engine.generate({ prompt: p.prompt, options: { maxNewTokens: 64, temperature: 0, ...options } })));
  const correct = results.filter((r, i) => verifyResponse(items[i], r.text).correct).length;
  const tokens = results.reduce((s, r) => s + r.usage.completionTokens, 0);
  const forwards = results.reduce((s, r) => s + r.stats.forwards, 0);
  return { accuracy: correct / items.length, tpf: tokens / forwards };
}

// Bars: about 60% of the accuracy measured on 200-500 held-out problems (TRAINING.md), TPF likewise.
describe.each([
  ['tiny-ar', 'autoregressive', { policy: 'ar' }, { arith: 0.85, string: 0.45, tpf: 1 }],
  ['tiny-dllm', 'block-diffusion', { policy: 'fast-dllm-v2', threshold: 0.9 }, { arith: 0.5, string: 0.38, tpf: 2.8 }],
] as const)('models/%s', (name, kind, options, bars) => {
  const dir = path.join(ROOT, 'models', name);
  let engine: Engine;
  beforeAll(async () => {
    engine = await Engine.create({ modelDir: dir, intraOpThreads: 1, maxBatchSize: 16 });
  });
  afterAll(async () => engine?.close());

  it('ships the task-suite tokenizer and matching special ids', () => {
    expect(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')).toBe(buildTokenizerJson());
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'dllm.json'), 'utf8'));
    expect(manifest.kind).toBe(kind);
    expect(manifest.block_size).toBe(32);
    expect(manifest.tokens).toMatchObject({ pad: PAD_ID, eos: EOS_ID, mask: MASK_ID });
    expect(manifest.delimiter_token_ids).toEqual(delimiterTokenIds());
  });

  it('solves held-out arithmetic and string problems', async () => {
    const arith = await accuracy(engine, held('arith', 100), options);
    const str = await accuracy(engine, held('string', 100), options);
    const got: Record<string, number> = { arith: arith.accuracy, string: str.accuracy, tpf: arith.tpf };
    const below = Object.entries(bars)
      .filter(([k, floor]) => !(got[k] >= floor))
      .map(([k, floor]) => `${k} ${got[k]} < ${floor}`);
    expect(below).toEqual([]);
  }, 120_000);
});
