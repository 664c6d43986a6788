// Engine loop, policies and cache plumbing on a tiny deterministic model (testing/counting-runner.ts):
// the model predicts table[c % table.length] where c counts the non-MASK tokens its attention mask lets
// it see, with a confidence set per absolute position. So every expected token below is derived by hand.
import { Engine, type TickPlanConfig } from './engine';
import type { EngineManifest } from './model-dir';
import { charCodec, CountingRunner } from './testing/counting-runner';

const CHARS = 'abcdefghij.'; // ids 0..10; '.' = 10
const MASK = 11;
const EOS = 12;
const PAD = 13;
const V = 14;
const HI = 5; // p = e^5 / (e^5 + 13) = 0.919 > 0.9
const LO = 2; // p = 0.362
const letters = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

function manifest(kind = 'block-diffusion', version = '1', maxPositions?: number): EngineManifest {
  const m: EngineManifest = { name: 'count', version, kind, block_size: 8, tokens: { mask: MASK, eos: EOS, pad: PAD }, delimiter_token_ids: [10] };
  if (maxPositions) m.architecture = { max_position_embeddings: maxPositions };
  return m;
}

function engine(
  opts: {
    table?: number[];
    margins?: number[];
    kind?: string;
    kvPoolBytes?: number;
    maxBatchSize?: number;
    maxPositions?: number;
    tickPlan?: TickPlanConfig;
  } = {},
) {
  const runner = new CountingRunner({ vocabSize: V, table: opts.table ?? letters, margins: opts.margins ?? [LO], maskId: MASK });
  const e = Engine.fromRunner(manifest(opts.kind, '1', opts.maxPositions), runner, charCodec(CHARS), {
    kvPoolBytes: opts.kvPoolBytes,
    maxBatchSize: opts.maxBatchSize,
    tickPlan: opts.tickPlan,
  });
  return { e, runner };
}

const prompt5 = 'abcde';
// Full block windows at every step (the sub-block cache, on by default, is tested against them below).
const base = { blockSize: 8, subBlockSize: 4, trajectory: true, subBlockCache: false } as const;

describe('Engine on a counting model', () => {
  it('fast-dllm-v2 at low confidence commits exactly one token per step, left to right, plus one commit forward per block', async () => {
    const { e } = engine();
    const r = await e.generate({ prompt: prompt5, options: { ...base, maxNewTokens: 6 } });
    // Position p is predicted from the p known tokens before it: letter(p % 10).
    expect(r.text).toBe('fghija');
    expect(r.finishReason).toBe('length');
    // steps 0,1,2 fill positions 5..7; forward 3 is the commit forward of block 0 and gives position 8.
    expect(r.trajectory!.stepMap).toEqual([0, 1, 2, 3, 4, 5]);
    expect(r.stats.forwards).toBe(6);
    expect(r.trajectory!.blocks).toEqual([
      [0, 3],
      [3, 6],
    ]);
    await e.close();
  });

  it("applies the manifest's decode_defaults under the request's own options, and refuses bad ones at load", async () => {
    const withDefaults = (d: EngineManifest['decode_defaults']) => {
      const runner = new CountingRunner({ vocabSize: V, table: letters, margins: [LO], maskId: MASK });
      return { e: Engine.fromRunner({ ...manifest(), decode_defaults: d }, runner, charCodec(CHARS)), runner };
    };
    const a = withDefaults({ sub_block_size: 4, sub_block_cache: false, threshold: 0.95 });
    const byDefault = await a.e.generate({ prompt: prompt5, options: { blockSize: 8, maxNewTokens: 6, trajectory: true } });
    expect(byDefault.trajectory!.options).toMatchObject({ subBlockSize: 4, subBlockCache: false, threshold: 0.95 });
    const { e: plain } = engine();
    const explicit = await plain.generate({ prompt: prompt5, options: { ...base, threshold: 0.95, maxNewTokens: 6 } });
    expect(byDefault.tokenIds).toEqual(explicit.tokenIds);
    expect(byDefault.trajectory!.stepMap).toEqual(explicit.trajectory!.stepMap);
    const overridden = await a.e.generate({ prompt: prompt5, options: { blockSize: 8, subBlockSize: 2, maxNewTokens: 6, trajectory: true } });
    expect(overridden.trajectory!.options).toMatchObject({ subBlockSize: 2, subBlockCache: false });
    await Promise.all([a.e.close(), plain.close()]);
    expect(() => withDefaults({ threshold: 1.5 })).toThrow(/decode_defaults\.threshold/);
  });

  it('stats().work sums the forwards shapes (positions B x S, LM-head rows B x R, keys B x S x (P + S))', async () => {
    const { e, runner } = engine();
    await Promise.all([
      e.generate({ prompt: prompt5, options: { ...base, maxNewTokens: 6 } }),
      e.generate({ prompt: 'abc', options: { ...base, maxNewTokens: 9 } }),
    ]);
    const w = e.stats().work;
    expect(runner.shapes.length).toBe(e.stats().forwards);
    expect(w.positions).toBe(runner.shapes.reduce((n, [B, S]) => n + B * S, 0));
    expect(w.keys).toBe(runner.shapes.reduce((n, [B, S, P]) => n + B * S * (P + S), 0));
    expect(w.logitRows).toBe(runner.drawn.reduce((n, rows) => n + rows.reduce((m, r) => m + r.length, 0), 0));
    expect(w.logitRows).toBeGreaterThan(0);
    expect(w.positions).toBeGreaterThan(w.logitRows - 1);
    await e.close();
  });

  it('ar gives the same text as threshold 1 on this model (AR order), one token per forward', async () => {
    const { e } = engine({ kind: 'autoregressive' });
    const r = await e.generate({ prompt: prompt5, options: { maxNewTokens: 6, trajectory: true } });
    expect(r.text).toBe('fghija');
    expect(r.trajectory!.stepMap).toEqual([0, 1, 2, 3, 4, 5]);
    expect(r.stats.tpf).toBe(1);
    await e.close();
  });

  it('commits every slot above the threshold in parallel, sub-block by sub-block, with the commit forward giving the next slot 0', async () => {
    const { e } = engine({ margins: [HI] });
    const r = await e.generate({ prompt: prompt5, options: { ...base, maxNewTokens: 12 } });
    // block [0,8): sub [4,8) targets 5..7 all see c=5 -> 'f'; commit forward sees 8 -> 'i' at 8;
    // block [8,16): sub [8,12) targets 9..11 see 9 -> 'j'; sub [12,16) targets see 12 -> 'c'; commit -> 16 -> 'g'.
    expect(r.text).toBe('fffijjjccccg');
    expect(r.trajectory!.stepMap).toEqual([0, 0, 0, 1, 2, 2, 2, 3, 3, 3, 3, 4]);
    expect(r.stats.tpf).toBeCloseTo(12 / 5);
    await e.close();
  });

  it('commits every slot strictly above the threshold; when none passes, the most confident one', async () => {
    // Token shift: position p is predicted by the output at p-1, whose margin is margins[(p-1) % n].
    const { e } = engine({ margins: [HI, LO] });
    const r = await e.generate({ prompt: prompt5, options: { ...base, maxNewTokens: 3 } });
    // step 0 (c=5): positions 5 and 7 are confident -> 'f','f'; step 1 (c=7): position 6 -> 'h'.
    expect(r.text).toBe('fhf');
    expect(r.trajectory!.stepMap).toEqual([0, 1, 0]);
    expect(r.trajectory!.confidence[0]).toBeGreaterThan(0.9);
    expect(r.trajectory!.confidence[1]).toBeLessThan(0.9);
    const none = engine({ margins: [LO, 3] }); // p(3) = 0.61: nothing passes 0.9
    const r2 = await none.e.generate({ prompt: prompt5, options: { ...base, maxNewTokens: 3 } });
    // step 0: most confident is position 6 -> 'f'; step 1 (c=6): 5 and 7 tie -> lowest, 5 -> 'g'; step 2: 7 -> 'h'.
    expect(r2.text).toBe('gfh');
    expect(r2.trajectory!.stepMap).toEqual([1, 0, 2]);
    // threshold 0.5 lets the 0.61 slot and nothing else through in step 0 as well
    const r3 = await none.e.generate({ prompt: prompt5, options: { ...base, maxNewTokens: 3, threshold: 0.5 } });
    expect(r3.trajectory!.stepMap).toEqual([1, 0, 2]);
    await e.close();
    await none.e.close();
  });

  it('entropy policy commits slots whose entropy is <= tau', async () => {
    const { e } = engine({ margins: [6, 5] });
    const strict = await e.generate({ prompt: prompt5, options: { ...base, policy: 'entropy', entropyThreshold: 0.3, maxNewTokens: 3 } });
    // Positions 5 and 7 are predicted with margin 6 (H ~ 0.22), position 6 with margin 5 (H ~ 0.49).
    expect(strict.trajectory!.stepMap).toEqual([0, 1, 0]);
    const loose = await e.generate({ prompt: prompt5, options: { ...base, policy: 'entropy', entropyThreshold: 0.6, maxNewTokens: 3 } });
    expect(loose.trajectory!.stepMap).toEqual([0, 0, 0]);
    expect(loose.trajectory!.entropy.every((h) => h <= 0.6)).toBe(true);
    await e.close();
  });

  it('stops on EOS, keeps the stop token in tokenIds but not in the text', async () => {
    const table = [...letters.slice(0, 8), EOS, 9]; // c % 10 == 8 -> EOS
    const { e } = engine({ kind: 'autoregressive', table });
    const r = await e.generate({ prompt: prompt5, options: { maxNewTokens: 20 } });
    expect(r.text).toBe('fgh');
    expect(r.tokenIds).toEqual([5, 6, 7, EOS]);
    expect(r.finishReason).toBe('stop');
    const d = engine({ table, margins: [HI] });
    const r2 = await d.e.generate({ prompt: prompt5, options: { ...base, maxNewTokens: 20 } });
    // block 0 gives 'fff', its commit forward predicts EOS at position 8.
    expect(r2.text).toBe('fff');
    expect(r2.finishReason).toBe('stop');
    await e.close();
    await d.e.close();
  });

  it('stop strings cut the text and stop decoding', async () => {
    const { e } = engine({ kind: 'autoregressive' });
    const r = await e.generate({ prompt: prompt5, options: { maxNewTokens: 20, stop: ['hi'] } });
    expect(r.text).toBe('fg');
    expect(r.finishReason).toBe('stop');
    expect(r.tokenIds).toEqual([5, 6, 7, 8]);
    await e.close();
  });

  it.each([
    ['hi', 'fg'], // spans blocks 0 ('fgh') and 1: 'h' must be held back, never streamed
    ['ja', 'fghi'], // inside block 1
    ['fgh', ''], // the whole first block
    ['hx', 'fghijabcdefghijabcde'], // a prefix seen at a block end that never completes: released later
  ])('streamed block text never shows a stop string or anything after it (stop %j)', async (stop, want) => {
    const { e } = engine();
    const streamed: string[] = [];
    const r = await e.generate({ prompt: prompt5, options: { ...base, maxNewTokens: 20, stop: [stop] } }, { onBlock: (ev) => streamed.push(ev.text) });
    expect(r.text).toBe(want);
    expect(streamed.join('')).toBe(want);
    await e.close();
  });

  it('adablock ends the block right after the most confident predicted delimiter', async () => {
    const table = [...letters.slice(0, 9), 10]; // c % 10 == 9 -> '.'
    const margins = [LO, LO, HI, LO]; // position 11 is predicted by output 10 (10 % 4 == 2): the confident one
    const { e, runner } = engine({ table, margins });
    const prompt9 = 'abcdefghi';
    const r = await e.generate({ prompt: prompt9, options: { ...base, policy: 'adablock', maxNewTokens: 16, delimiterThreshold: 0.3 } });
    // window at 8 (slot 0 = prompt), lookahead 4 slots (9..12) all predict '.'; most confident at 11 -> block [8,12).
    expect(r.trajectory!.blocks[0]).toEqual([0, 3]);
    // step 0 (c=9) commits only the confident '.' at 11; then 9 ('a', c=10) and 10 ('b', c=11).
    expect(r.text.slice(0, 3)).toBe('ab.');
    // block-aligned: the block after [8,12) runs to the trained boundary 16, never across it, and no
    // planning window is longer than the block size
    expect(r.trajectory!.blocks[1]).toEqual([3, 7]);
    for (const [a, b] of r.trajectory!.blocks) expect(Math.floor((9 + a) / 8)).toBe(Math.floor((9 + b - 1) / 8));
    const fixed = await e.generate({ prompt: prompt9, options: { ...base, policy: 'adablock', maxNewTokens: 16, delimiterThreshold: 0.95 } });
    expect(fixed.trajectory!.blocks[0]).toEqual([0, 7]); // default block length 8 from position 8
    expect(Math.max(...runner.shapes.map(([, S]) => S))).toBeLessThanOrEqual(8);
    await e.close();
  });

  it('sub-block cache runs sub-block forwards and gives the same tokens as the block cache here', async () => {
    const a = engine();
    const off = await a.e.generate({ prompt: prompt5, options: { ...base, maxNewTokens: 14 } });
    const b = engine();
    const on = await b.e.generate({ prompt: prompt5, options: { ...base, maxNewTokens: 14, subBlockCache: true } });
    const c = engine();
    const byDefault = await c.e.generate({ prompt: prompt5, options: { blockSize: 8, subBlockSize: 4, maxNewTokens: 14 } });
    expect(c.runner.shapes).toEqual(b.runner.shapes); // on by default
    expect(byDefault.tokenIds).toEqual(on.tokenIds);
    await c.e.close();
    expect(on.text).toBe(off.text);
    expect(b.runner.shapes.some(([, S]) => S === 4)).toBe(true);
    expect(a.runner.shapes.some(([, S]) => S === 4)).toBe(false);
    await a.e.close();
    await b.e.close();
  });

  it("sub-block cache: every step after a block's first runs only the active sub-block and the slots before it whose K/V changed", async () => {
    const opts = { blockSize: 16, subBlockSize: 4, maxNewTokens: 12, trajectory: true, subBlockCache: false } as const;
    const a = engine();
    const off = await a.e.generate({ prompt: prompt5, options: opts });
    const b = engine();
    const on = await b.e.generate({ prompt: prompt5, options: { ...opts, subBlockCache: true } });
    // the counting model counts the real tokens each query sees: a kept slot whose K/V still says MASK
    // after its token was committed would change the count and the tokens
    expect(on.tokenIds).toEqual(off.tokenIds);
    expect(on.stats.forwards).toBe(off.stats.forwards);
    // block [0,16) (prompt in slots 0..4): the first step is the 16-slot window; every later step runs
    // [a-1, a+4) of the active sub-block [a, a+4) (slot a-1's output draws slot a): 5 slots
    const S = b.runner.shapes.map(([, s]) => s);
    expect(S[0]).toBe(16);
    expect(S.slice(1, 11)).toEqual(new Array(10).fill(5));
    expect(a.runner.shapes.every(([, s]) => s === 16)).toBe(true);
    await a.e.close();
    await b.e.close();
  });

  it('rows of different lengths share one forward (padded), and each gets what it gets alone', async () => {
    const reqs = [
      { prompt: 'abc', options: { blockSize: 16, subBlockSize: 4, maxNewTokens: 12, subBlockCache: true } },
      { prompt: 'abcdefg', options: { blockSize: 16, subBlockSize: 4, maxNewTokens: 12, subBlockCache: false } },
    ];
    const alone: string[] = [];
    for (const r of reqs) {
      const { e } = engine();
      alone.push((await e.generate(r)).text);
      await e.close();
    }
    const { e, runner } = engine();
    const together = await Promise.all(reqs.map((r) => e.generate(r)));
    expect(together.map((r) => r.text)).toEqual(alone);
    // 5-slot sub-block steps and 16-slot windows ran in the same forwards
    expect(runner.shapes.filter(([B, S]) => B === 2 && S === 16).length).toBeGreaterThan(5);
    await e.close();
  });

  it('phase alignment: small forwards wait (bounded) so sequences meet in fuller forwards, with the same tokens', async () => {
    // eight sub-block-cache decoders at different phases: 32-slot windows/commits and 5-slot steps
    const reqs = Array.from({ length: 8 }, (_, i) => ({
      prompt: 'abcdefghij.abcdefghij'.slice(0, 2 + ((i * 5) % 19)),
      options: { blockSize: 32, subBlockSize: 4, maxNewTokens: 40, subBlockCache: true },
    }));
    const run = async (tickPlan: TickPlanConfig) => {
      const { e, runner } = engine({ margins: [HI, LO, LO, HI, LO], tickPlan });
      const out = await Promise.all(reqs.map((q) => e.generate(q)));
      const st = e.stats();
      await e.close();
      return { ids: out.map((r) => r.tokenIds), rowsPerForward: st.rows / st.forwards, held: st.heldRows, forwards: runner.calls };
    };
    const off = await run({ maxHoldTicks: 0, padding: 'never' });
    const on = await run({ maxHoldTicks: 3, holdBelow: 0.5, padding: 'never' });
    expect(on.ids).toEqual(off.ids);
    expect(off.held).toBe(0);
    expect(on.held).toBeGreaterThan(0);
    expect(on.forwards).toBeLessThan(off.forwards);
    expect(on.rowsPerForward).toBeGreaterThan(off.rowsPerForward);
  });

  it('packs mixed shapes into one padded forward when the cost model says forwards cost mostly their fixed part', async () => {
    const reqs = [
      { prompt: 'abc', options: { blockSize: 32, subBlockSize: 4, maxNewTokens: 20, subBlockCache: true } }, // 5-slot steps
      { prompt: 'abcdefg', options: { blockSize: 32, subBlockSize: 4, maxNewTokens: 20, subBlockCache: false } }, // 32-slot windows
    ];
    const alone: number[][] = [];
    for (const r of reqs) {
      const { e } = engine({ margins: [HI, LO, LO] });
      alone.push((await e.generate(r)).tokenIds);
      await e.close();
    }
    const apart = engine({ margins: [HI, LO, LO], tickPlan: { maxHoldTicks: 0, padding: 'never' } });
    const a = await Promise.all(reqs.map((r) => apart.e.generate(r)));
    const packed = engine({ margins: [HI, LO, LO], tickPlan: { maxHoldTicks: 0, costModel: { fixedMs: 10, perPositionMs: 0.001 } } });
    const p = await Promise.all(reqs.map((r) => packed.e.generate(r)));
    expect(a.map((r) => r.tokenIds)).toEqual(alone);
    expect(p.map((r) => r.tokenIds)).toEqual(alone);
    // apart: the 5-slot steps ran as their own forwards; packed: padded into the 32-slot ones
    expect(apart.runner.shapes.some(([B, S]) => B === 1 && S === 5)).toBe(true);
    expect(packed.runner.shapes.some(([, S]) => S === 5)).toBe(false);
    expect(packed.runner.calls).toBeLessThan(apart.runner.calls);
    const w = packed.e.stats().work;
    expect(w.rowPositions).toBeLessThan(w.positions); // the padding computed
    expect(packed.e.stats().cost).toEqual({ fixedMs: 10, perPositionMs: 0.001 });
    expect(() => engine({ tickPlan: { holdBelow: 3 } })).toThrow(/holdBelow/);
    expect(() => engine({ tickPlan: { costModel: { fixedMs: -1, perPositionMs: 0 } } })).toThrow(/costModel/);
    await apart.e.close();
    await packed.e.close();
  });

  it('batch invariance: concurrent requests of different lengths give what each gives alone', async () => {
    const reqs = [
      { prompt: 'abc', options: { ...base, maxNewTokens: 9 } },
      { prompt: 'abcdefghijab', options: { ...base, maxNewTokens: 13 } },
      { prompt: 'ab', options: { ...base, maxNewTokens: 5, subBlockCache: true } },
      { prompt: 'abcdefghij.abcdefghij', options: { ...base, maxNewTokens: 20, policy: 'entropy' as const } },
    ];
    const alone = [];
    for (const q of reqs) {
      const { e } = engine({ margins: [HI, LO, LO] });
      alone.push((await e.generate(q)).tokenIds);
      await e.close();
    }
    const { e, runner } = engine({ margins: [HI, LO, LO] });
    const together = await Promise.all(reqs.map((q) => e.generate(q)));
    expect(together.map((r) => r.tokenIds)).toEqual(alone);
    expect(runner.shapes.some(([B]) => B > 1)).toBe(true);
    await e.close();
  });

  it.each(['block-diffusion', 'autoregressive'])(
    'a group sharing one prompt computes its prefill once (prefix sharing, %s) and gets identical greedy output',
    async (kind) => {
      const prompt = 'abcdefghij.abcdefghij'; // 21 tokens: 2 whole pages before the last prompt token's page
      const { e, runner } = engine({ margins: [HI, LO], kind });
      const group = await Promise.all(
        Array.from({ length: 8 }, () => e.generate({ prompt, options: { ...(kind === 'autoregressive' ? {} : base), maxNewTokens: 8 } })),
      );
      // the first sample's first forward covers the 16 prefix positions (plus, for ar, the 5-token tail); the others start at 16
      const fromZero = runner.shapes.filter(([, , P]) => P === 0);
      expect(fromZero.reduce((n, [B]) => n + B, 0)).toBe(1);
      expect(new Set(group.map((r) => r.text)).size).toBe(1);
      expect(group.filter((r) => r.stats.prefixCacheHitTokens === 16)).toHaveLength(7);
      expect(e.stats().pool.hits).toBeGreaterThanOrEqual(14);
      await e.close();
    },
  );

  it('never exceeds the pool budget under churn: requests wait for memory instead of failing', async () => {
    const { e } = engine({ margins: [HI, LO], kvPoolBytes: 2 * 1024 });
    // page = 1 layer x 2 x 1 head x 8 positions x 2 floats = 128 bytes; each request needs up to 4 pages.
    const reqs = Array.from({ length: 24 }, (_, i) => e.generate({ prompt: 'abcdefghij'.slice(0, 1 + (i % 9)), options: { ...base, maxNewTokens: 16 } }));
    const out = await Promise.all(reqs);
    expect(out.every((r) => r.tokenIds.length === 16)).toBe(true);
    const s = e.stats().pool;
    expect(s.peakUsedBytes).toBeLessThanOrEqual(2 * 1024);
    expect(s.usedBytes + s.reservedBytes).toBeLessThanOrEqual(2 * 1024);
    expect(s.reservedBytes).toBe(0);
    await expect(e.generate({ prompt: 'abc', options: { maxNewTokens: 500 } })).rejects.toThrow(/budget/);
    await e.close();
  });

  it('abort stops at the next block boundary and resolves with the partial output', async () => {
    const { e } = engine();
    const ac = new AbortController();
    const blocks: number[][] = [];
    const r = await e.generate(
      { prompt: prompt5, options: { ...base, maxNewTokens: 40 } },
      {
        signal: ac.signal,
        onBlock: (ev) => {
          blocks.push(ev.tokenIds);
          ac.abort();
        },
      },
    );
    expect(r.finishReason).toBe('cancelled');
    expect(r.text).toBe('fghi'); // block 0 (3 tokens) + slot 0 of block 1
    expect(blocks).toEqual([[5, 6, 7], [8]]); // the last event carries what the cancelled sequence returns
    const pre = new AbortController();
    pre.abort();
    const r0 = await e.generate({ prompt: prompt5 }, { signal: pre.signal });
    expect(r0).toMatchObject({ finishReason: 'cancelled', tokenIds: [] });
    await e.close();
  });

  it('seeded sampling is reproducible and records log-probs of the sampled tokens', async () => {
    const { e } = engine({ margins: [1] });
    const o = { ...base, maxNewTokens: 16, temperature: 1, seed: 42 };
    const a = await e.generate({ prompt: prompt5, options: o });
    const b = await e.generate({ prompt: prompt5, options: o });
    const c = await e.generate({ prompt: prompt5, options: { ...o, seed: 43 } });
    expect(a.tokenIds).toEqual(b.tokenIds);
    expect(a.tokenIds).not.toEqual(c.tokenIds);
    expect(a.trajectory!.seed).toBe(42);
    a.trajectory!.logprobs.forEach((lp, i) => expect(lp).toBeCloseTo(Math.log(a.trajectory!.confidence[i]), 12));
    await e.close();
  });

  it('block sizes other than the page size decode correctly (pages shared only when blocks tile them)', async () => {
    const expected = Array.from({ length: 20 }, (_, i) => CHARS[(5 + i) % 10]).join('');
    for (const blockSize of [4, 8, 16]) {
      const { e } = engine();
      const opts = { blockSize, subBlockSize: Math.min(4, blockSize), maxNewTokens: 20, trajectory: true };
      const [a, b] = await Promise.all([
        e.generate({ prompt: 'abcdefghij.abcdefghij', options: opts }),
        e.generate({ prompt: 'abcdefghij.abcdefghij', options: opts }),
      ]);
      expect(a.text).toBe(Array.from({ length: 20 }, (_, i) => CHARS[(21 + i) % 10]).join(''));
      expect(b.text).toBe(a.text);
      const one = await e.generate({ prompt: prompt5, options: opts });
      expect(one.text).toBe(expected);
      // 16-wide blocks do not tile 8-position pages: nothing is shared; 4 and 8 share the prompt pages
      expect(e.stats().pool.hits > 0).toBe(blockSize !== 16);
      expect(e.stats().pool.usedBytes).toBe(e.stats().pool.cachedPages * 128);
      await e.close();
    }
  });

  it.each([
    ['fast-dllm-v2', false],
    ['fast-dllm-v2', true],
    ['adablock', false],
    ['adablock', true],
    ['ar', false],
  ] as const)('%s (sub-block cache %s) never runs a position past max_position_embeddings: generation ends with length', async (policy, subBlockCache) => {
    const { e, runner } = engine({ maxPositions: 21, kind: policy === 'ar' ? 'autoregressive' : 'block-diffusion' });
    const r = await e.generate({ prompt: prompt5, options: { ...(policy === 'ar' ? {} : { ...base, policy, subBlockCache }), maxNewTokens: 100 } });
    expect(r.finishReason).toBe('length');
    expect(r.tokenIds).toHaveLength(16);
    expect(Math.max(...runner.maxPositions)).toBeLessThanOrEqual(20);
    // keys = pages + (with the sub-block cache) the kept window, which repeats positions of the new ones
    if (!subBlockCache) expect(Math.max(...runner.shapes.map(([, S, P]) => S + P))).toBeLessThanOrEqual(21);
    await expect(e.generate({ prompt: 'abcdefghij.abcdefghij' })).rejects.toThrow(/at most 21 positions/);
    await e.close();
  });

  it.each([true, false])(
    "policy ar on a block-diffusion model decodes in AR order with the model's block attention, not a causal mask (sub-block cache %s)",
    async (subBlockCache) => {
      // margins HI: every slot is confident, so only the one-slot sub-blocks keep it to one token per forward.
      const a = engine({ margins: [HI] });
      const r = await a.e.generate({ prompt: prompt5, options: { policy: 'ar', blockSize: 8, maxNewTokens: 10, trajectory: true, subBlockCache } });
      const b = engine({ margins: [HI] });
      const ref = await b.e.generate({
        prompt: prompt5,
        options: { policy: 'fast-dllm-v2', blockSize: 8, subBlockSize: 1, threshold: 1, maxNewTokens: 10, subBlockCache },
      });
      expect(r.tokenIds).toEqual(ref.tokenIds);
      expect(r.text).toBe(ref.text);
      expect(r.stats.tpf).toBe(1);
      expect(r.trajectory!.options).toMatchObject({ policy: 'ar', subBlockSize: 1, subBlockCache });
      // block-diffusion forwards (a window over the block, then one-slot steps or windows, then commit
      // forwards), never one causal token
      expect(a.runner.shapes.map(([, S]) => S)).toEqual(b.runner.shapes.map(([, S]) => S));
      expect(a.runner.shapes.some(([, S]) => S > 1)).toBe(true);
      // with the sub-block cache, every step after a block's first runs 2 slots (the one drawn and the one before it)
      if (subBlockCache) expect(a.runner.shapes.filter(([, S]) => S === 2).length).toBeGreaterThan(4);
      for (const x of [a, b]) await x.e.close();
    },
  );

  it("logits only where drawn: KV-only prefill draws nothing, windows draw the active sub-block's masked slots, commits one row", async () => {
    const { e, runner } = engine();
    // prompt of 11: prefill [0,8) (S=8), then the window of block [8,16) with slots 0..2 known.
    const r = await e.generate({ prompt: 'abcdefghija', options: { ...base, maxNewTokens: 7 } });
    expect(r.text.length).toBe(7);
    const forwards = runner.shapes.map(([B, S], i) => ({ B, S, rows: runner.drawn[i][0], fetched: runner.fetched[i] }));
    // prefill: no row drawn, only K/V fetched (the LM head multiplies an empty matrix)
    expect(forwards[0]).toEqual({ B: 1, S: 8, rows: [], fetched: ['present_key.0', 'present_value.0'] });
    // first window: sub-block [0,4) has masked slot 3 only -> row 2; greedy: statistics, never the logits
    expect(forwards[1].rows).toEqual([2]);
    expect(forwards[1].fetched).toEqual(['argmax', 'max_prob', 'entropy']);
    // next window: sub-block [4,8): slots 4..7 masked -> rows 3..6
    expect(forwards[2].rows).toEqual([3, 4, 5, 6]);
    // the commit forward of block [8,16) draws from its last output only
    const commit = forwards.find((f, i) => i > 0 && f.fetched.includes('present_key.0'))!;
    expect(commit.rows).toEqual([7]);
    for (const f of forwards) expect(f.fetched).not.toContain('logits');
    await e.close();
  });

  it("sampling fetches the drawn rows' logits (and only then)", async () => {
    const { e, runner } = engine({ kind: 'autoregressive' });
    await e.generate({ prompt: prompt5, options: { maxNewTokens: 3, temperature: 1, seed: 1 } });
    expect(runner.fetched.every((f) => f.includes('logits'))).toBe(true);
    expect(runner.drawn[0]).toEqual([[4]]); // the prompt forward draws from its last position only
    await e.close();
  });

  it('rejects bad requests with clear errors', async () => {
    const { e } = engine();
    await expect(e.generate({ prompt: '' })).rejects.toThrow(/empty/);
    await expect(e.generate({ promptIds: [99] })).rejects.toThrow(/vocabulary/);
    await expect(e.generate({ prompt: 'a', options: { threshold: 2 } })).rejects.toThrow(/threshold/);
    await expect(e.generate({})).rejects.toThrow(/exactly one/);
    await e.close();
  });
});
