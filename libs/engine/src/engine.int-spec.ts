// The engine on real Qwen2-style ONNX graphs through onnxruntime (worker thread): a seeded random tiny
// model written by libs/model's builder (always), and the bundled models/tiny-dllm when present.
// Checks: KV cache vs no cache, batch invariance with real float kernels and padded pasts, seeded
// reproducibility, the pool budget under churn, version isolation across a hot swap.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildTinyModel } from '@dllm/model';
import { Engine } from './engine';
import { MASK_BLOCKED } from './batch';
import { OrtRunner } from './runner/ort-runner';

const ROOT = path.resolve(__dirname, '../../..');
let tmp: string;
let dirA: string;
let dirB: string;

function build(dir: string, version: string, seed: number) {
  buildTinyModel(dir, {
    seed,
    config: { vocab_size: 64, num_layers: 2, hidden_size: 32, head_dim: 8 },
    manifest: { name: 'tiny-test', version, block_size: 8, delimiter_token_ids: [14] },
  });
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-engine-int-'));
  dirA = path.join(tmp, 'a');
  dirB = path.join(tmp, 'b');
  build(dirA, 'v1', 11);
  build(dirB, 'v2', 12);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Greedy fast-dllm-v2 without any cache: every forward recomputes the whole sequence from position 0. */
async function noCacheDecode(
  runner: OrtRunner,
  prompt: number[],
  o: { blockSize: number; subBlockSize: number; threshold: number; maxNewTokens: number; mask: number; eos: number },
) {
  const { layers, kvHeads, headDim, vocabSize: V } = runner.info;
  const toks = [...prompt];
  const cap = prompt.length + o.maxNewTokens;
  const forward = async (n: number) => {
    const ids = BigInt64Array.from(toks.slice(0, n).map(BigInt));
    const pos = BigInt64Array.from({ length: n }, (_, i) => BigInt(i));
    const mask = new Float32Array(n * n).fill(MASK_BLOCKED);
    for (let q = 0; q < n; q++) for (let k = 0; k < n; k++) if (Math.floor(k / o.blockSize) <= Math.floor(q / o.blockSize)) mask[q * n + k] = 0;
    const feeds: Record<string, { type: 'float32' | 'int64'; dims: number[]; data: Float32Array | BigInt64Array }> = {
      input_ids: { type: 'int64', dims: [1, n], data: ids },
      position_ids: { type: 'int64', dims: [1, n], data: pos },
      attention_mask: { type: 'float32', dims: [1, 1, n, n], data: mask },
      logit_index: { type: 'int64', dims: [1, n], data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i)) },
      banned_token_ids: { type: 'int64', dims: [0], data: new BigInt64Array(0) },
    };
    for (let l = 0; l < layers; l++) {
      feeds[`past_key.${l}`] = { type: 'float32', dims: [1, kvHeads, 0, headDim], data: new Float32Array(0) };
      feeds[`past_value.${l}`] = { type: 'float32', dims: [1, kvHeads, 0, headDim], data: new Float32Array(0) };
    }
    return (await runner.run(feeds, ['logits'])).outputs.logits.data as Float32Array;
  };
  const dist = (logits: Float32Array, row: number) => {
    let best = -1;
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (v !== o.mask && logits[row * V + v] > max) ((max = logits[row * V + v]), (best = v));
    let sum = 0;
    for (let v = 0; v < V; v++) if (v !== o.mask) sum += Math.exp(logits[row * V + v] - max);
    return { token: best, prob: 1 / sum };
  };
  let start = Math.floor((prompt.length - 1) / o.blockSize) * o.blockSize;
  for (;;) {
    const end = start + o.blockSize;
    while (toks.length < end) toks.push(o.mask);
    const stopAt = () => {
      const i = toks.findIndex((t, p) => p >= prompt.length && t === o.eos);
      return i < 0 ? cap : Math.min(i, cap);
    };
    for (;;) {
      const limit = Math.min(end, stopAt());
      let active = -1;
      for (let a = start; a < end && active < 0; a += o.subBlockSize)
        for (let p = a; p < Math.min(a + o.subBlockSize, limit); p++) if (toks[p] === o.mask) active = a;
      if (active < 0) break;
      const logits = await forward(end);
      const cands = [];
      for (let p = active; p < Math.min(active + o.subBlockSize, limit); p++) if (toks[p] === o.mask) cands.push({ p, ...dist(logits, p - 1) });
      let chosen = cands.filter((c) => c.prob > o.threshold);
      if (chosen.length === 0) chosen = [cands.reduce((b, c) => (c.prob > b.prob ? c : b))];
      for (const c of chosen) toks[c.p] = c.token;
    }
    if (stopAt() <= end) return toks.slice(prompt.length, Math.min(stopAt() + (stopAt() < cap ? 1 : 0), cap));
    const logits = await forward(end);
    toks[end] = dist(logits, end - 1).token;
    start = end;
  }
}

describe('Engine on a builder-made Qwen2-style model (onnxruntime)', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await Engine.create({ modelDir: dirA, intraOpThreads: 1, maxBatchSize: 8 });
  });
  afterAll(async () => engine?.close());

  const prompts = [
    [5, 6, 7],
    [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
    [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37],
  ];

  it('KV-cached decoding equals decoding without any cache (fast-dllm-v2, greedy)', async () => {
    const runner = await OrtRunner.create({ modelPath: path.join(dirA, 'model.onnx'), intraOpThreads: 1 });
    try {
      for (const threshold of [0.9, 0.03]) {
        for (const p of prompts) {
          const o = { blockSize: 8, subBlockSize: 4, threshold, maxNewTokens: 20 };
          // the page KV cache is exact; the sub-block cache (default) approximates later sub-blocks' K/V, so full windows here
          const got = await engine.generate({ promptIds: p, options: { ...o, subBlockCache: false } });
          const want = await noCacheDecode(runner, p, { ...o, mask: 2, eos: 1 });
          expect(got.tokenIds).toEqual(want);
        }
      }
    } finally {
      await runner.close();
    }
  });

  it('batch invariance: each sequence decodes the same alone and batched with others', async () => {
    const reqs = [
      ...prompts.map((p) => ({ promptIds: p, options: { maxNewTokens: 24, threshold: 0.03, subBlockCache: false } })),
      { promptIds: prompts[1], options: { maxNewTokens: 16, policy: 'ar' as const } },
      { promptIds: prompts[2], options: { maxNewTokens: 16, subBlockCache: true, threshold: 0.03 } },
      { promptIds: prompts[0], options: { maxNewTokens: 16, policy: 'adablock' as const, threshold: 0.03 } },
    ];
    const alone = [];
    for (const q of reqs) alone.push((await engine.generate(q)).tokenIds);
    const before = engine.stats();
    const together = await Promise.all(reqs.map((q) => engine.generate(q)));
    const after = engine.stats();
    expect(together.map((r) => r.tokenIds)).toEqual(alone);
    expect(after.rows - before.rows).toBeGreaterThan(after.forwards - before.forwards); // some forwards were batched
  });

  it('seeded sampling is reproducible; a different seed differs', async () => {
    const o = { maxNewTokens: 24, temperature: 1, topP: 0.9, topK: 20, seed: 7, trajectory: true };
    const [a, b, c] = await Promise.all([
      engine.generate({ promptIds: prompts[1], options: o }),
      engine.generate({ promptIds: prompts[1], options: o }),
      engine.generate({ promptIds: prompts[1], options: { ...o, seed: 8 } }),
    ]);
    expect(a.tokenIds).toEqual(b.tokenIds);
    expect(a.tokenIds).not.toEqual(c.tokenIds);
    expect(a.trajectory!.logprobs.every((x) => x <= 0)).toBe(true);
  });

  it('never exceeds the pool budget under churn', async () => {
    const small = await Engine.create({ modelDir: dirA, intraOpThreads: 1, kvPoolBytes: 48 * 1024, maxBatchSize: 8 });
    try {
      const page = small.pageBytes(); // 2 layers x K,V x 2 heads x 8 positions x 8 dims x 4 bytes = 2 KiB
      const out = await Promise.all(
        Array.from({ length: 20 }, (_, i) => small.generate({ promptIds: prompts[i % 3], options: { maxNewTokens: 16 + (i % 5) * 4, threshold: 0.03 } })),
      );
      expect(out.every((r) => r.tokenIds.length > 0)).toBe(true);
      const s = small.stats().pool;
      expect(s.peakUsedBytes).toBeLessThanOrEqual(48 * 1024);
      expect(s.reservedBytes).toBe(0);
      expect(page).toBe(2048);
    } finally {
      await small.close();
    }
  });

  it('hot swap: new requests use the new version, an in-flight one finishes on the old, the pool never mixes them', async () => {
    const e = await Engine.create({ modelDir: dirA, intraOpThreads: 1 });
    try {
      const prompt = prompts[2]; // two whole blocks are prefilled and cached
      const first = await e.generate({ promptIds: prompt, options: { maxNewTokens: 8 } });
      const inflight = e.generate({ promptIds: prompt, options: { maxNewTokens: 24 } });
      await e.swapModel(dirB);
      const fresh = await e.generate({ promptIds: prompt, options: { maxNewTokens: 8 } });
      const old = await inflight;
      expect(old.model.version).toBe('v1');
      expect(fresh.model.version).toBe('v2');
      expect(fresh.stats.prefixCacheHitTokens).toBe(0); // v1 pages were not reused
      expect(first.model.version).toBe('v1');
      const again = await e.generate({ promptIds: prompt, options: { maxNewTokens: 8 } });
      expect(again.stats.prefixCacheHitTokens).toBe(16); // v2 pages are
      expect(e.model.version).toBe('v2');
      await expect(e.swapModel(dirB)).rejects.toThrow(/same name and version/);
    } finally {
      await e.close();
    }
  });
});

const bundled = path.join(ROOT, 'models', 'tiny-dllm');
const haveBundled = fs.existsSync(path.join(bundled, 'dllm.json'));
(haveBundled ? describe : describe.skip)('Engine on the bundled models/tiny-dllm', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await Engine.create({ modelDir: bundled, intraOpThreads: 1, maxBatchSize: 8 });
  });
  afterAll(async () => engine?.close());

  it('batch invariance and sub-block cache on a trained model', async () => {
    const prompts = ['Q: 12+34=?\nA:', 'Q: 347+589=?\nA:', 'Q: reverse abc\nA:'];
    const alone = [];
    for (const p of prompts) alone.push((await engine.generate({ prompt: p, options: { maxNewTokens: 48 } })).tokenIds);
    const together = await Promise.all(prompts.map((p) => engine.generate({ prompt: p, options: { maxNewTokens: 48 } })));
    expect(together.map((r) => r.tokenIds)).toEqual(alone);
    const cached = await Promise.all(prompts.map((p) => engine.generate({ prompt: p, options: { maxNewTokens: 48, subBlockCache: true } })));
    expect(cached.every((r) => r.tokenIds.length > 0)).toBe(true);
  });
});
if (!haveBundled) console.warn(`engine.int-spec: ${bundled} is missing; bundled-model checks skipped`);
