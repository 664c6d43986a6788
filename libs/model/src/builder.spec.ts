/** @jest-environment ./libs/model/src/testing/ort-environment.js */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { buildTinyModel, TINY_DEFAULTS, type TinyModel } from './tiny';
import { loadModelDir } from './model-dir';
import { buildDecoderOnnx } from './builder';
import { inspectOnnx } from './onnx';
import type { Architecture } from './manifest';
import { referenceForward } from './testing/reference';
import { allRowsDrawn, blockCausal, causal, concatSeq, emptyCache, forward, maxAbsDiff, type Cache } from './testing/run';

const BLOCK = 4;
const IDS = [5, 17, 30, 2, 44, 9, 2, 2, 61, 7, 12, 90];

describe('decoder graph on onnxruntime', () => {
  let tmp: string;
  let tiny: TinyModel;
  let session: ort.InferenceSession;
  let arch: Architecture;
  const L = TINY_DEFAULTS.num_layers;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-model-'));
    tiny = buildTinyModel(path.join(tmp, 'm'), { seed: 7, manifest: { block_size: BLOCK } });
    arch = tiny.manifest.architecture;
    session = await ort.InferenceSession.create(path.join(tiny.dir, 'model.onnx'), { logSeverityLevel: 3 }); // ORT warns (W) about the empty [B,0] statistics of zero-draw runs: expected, asserted below
  });
  afterAll(async () => {
    await session?.release();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const cacheOf = () => emptyCache(L, 1, arch.num_key_value_heads, arch.head_dim);

  async function blockByBlock(sess: ort.InferenceSession): Promise<Float32Array> {
    let cache: Cache = cacheOf();
    const parts: Float32Array[] = [];
    for (let b = 0; b < IDS.length; b += BLOCK) {
      const { logits, present } = await forward(sess, L, IDS.slice(b, b + BLOCK), b, cache, blockCausal(BLOCK));
      parts.push(logits);
      cache = { keys: cache.keys.map((k, i) => concatSeq(k, present.keys[i])), values: cache.values.map((v, i) => concatSeq(v, present.values[i])) };
    }
    const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  it('format v2: logits only for the logit_index rows (none: no LM head), statistics in the graph', async () => {
    const S = IDS.length;
    const full = await forward(session, L, IDS, 0, cacheOf(), blockCausal(BLOCK));
    const V = full.logits.length / S;
    const some = await forward(session, L, IDS, 0, cacheOf(), blockCausal(BLOCK), [7, 2, 2], [2]);
    expect(some.out.logits.dims).toEqual([1, 3, V]);
    expect(some.out.argmax.dims).toEqual([1, 3]);
    for (const [k, r] of [7, 2, 2].entries()) {
      const row = full.logits.subarray(r * V, (r + 1) * V);
      expect(maxAbsDiff(some.logits.subarray(k * V, (k + 1) * V), row)).toBe(0);
      let best = -1;
      for (let v = 0; v < V; v++) if (v !== 2 && (best < 0 || row[v] > row[best])) best = v;
      expect(Number((some.out.argmax.data as BigInt64Array)[k])).toBe(best);
    }
    const none = await forward(session, L, IDS, 0, cacheOf(), blockCausal(BLOCK), []);
    expect(none.out.logits.dims).toEqual([1, 0, V]);
    // the K/V a KV-only forward exists for are unchanged
    for (let i = 0; i < L; i++) {
      expect(none.present.keys[i].dims).toEqual([1, arch.num_key_value_heads, S, arch.head_dim]);
      expect(maxAbsDiff(none.present.keys[i].data as Float32Array, full.present.keys[i].data as Float32Array)).toBe(0);
      expect(maxAbsDiff(none.present.values[i].data as Float32Array, full.present.values[i].data as Float32Array)).toBe(0);
    }
  });

  it('matches an independent TypeScript forward pass (block-causal mask)', async () => {
    const { logits } = await forward(session, L, IDS, 0, cacheOf(), blockCausal(BLOCK));
    const ref = referenceForward(
      arch,
      128,
      tiny.weights,
      IDS,
      IDS.map((_, i) => i),
      blockCausal(BLOCK),
    );
    const flat = Float64Array.from(ref.flatMap((r) => [...r]));
    expect(maxAbsDiff(logits, flat)).toBeLessThan(1e-4);
    // the logits are not trivial
    expect(Math.max(...flat) - Math.min(...flat)).toBeGreaterThan(0.5);
  });

  it('full sequence equals block-by-block decoding with the KV cache (zero-length past first)', async () => {
    const full = await forward(session, L, IDS, 0, cacheOf(), blockCausal(BLOCK));
    const blocks = await blockByBlock(session);
    expect(maxAbsDiff(full.logits, blocks)).toBeLessThan(1e-5);
  });

  it('a causal mask gives different logits than block-causal (the equivalence test can fail)', async () => {
    const bc = await forward(session, L, IDS, 0, cacheOf(), blockCausal(BLOCK));
    const c = await forward(session, L, IDS, 0, cacheOf(), causal);
    expect(maxAbsDiff(bc.logits, c.logits)).toBeGreaterThan(1e-3);
    const blocks = await blockByBlock(session);
    expect(maxAbsDiff(c.logits, blocks)).toBeGreaterThan(1e-3);
  });

  it('returns only the new positions in present_key/present_value, keys after rotary', async () => {
    const { present } = await forward(session, L, IDS.slice(0, 3), 5, cacheOf(), () => true);
    expect(present.keys[0].dims).toEqual([1, arch.num_key_value_heads, 3, arch.head_dim]);
    expect(present.values[1].dims).toEqual([1, arch.num_key_value_heads, 3, arch.head_dim]);
    // Same token at another position: value equal, key rotated differently.
    const other = await forward(session, L, IDS.slice(0, 3), 9, cacheOf(), () => true);
    expect(maxAbsDiff(present.values[0].data as Float32Array, other.present.values[0].data as Float32Array)).toBeLessThan(1e-6);
    expect(maxAbsDiff(present.keys[0].data as Float32Array, other.present.keys[0].data as Float32Array)).toBeGreaterThan(1e-3);
  });

  it('the com.microsoft MultiHeadAttention formulation gives the same logits', async () => {
    const mha = buildTinyModel(path.join(tmp, 'mha'), { seed: 7, attention: 'mha', manifest: { block_size: BLOCK } });
    const s2 = await ort.InferenceSession.create(path.join(mha.dir, 'model.onnx'));
    try {
      const a = await forward(session, L, IDS, 0, cacheOf(), blockCausal(BLOCK));
      const b = await forward(s2, L, IDS, 0, cacheOf(), blockCausal(BLOCK));
      expect(maxAbsDiff(a.logits, b.logits)).toBeLessThan(1e-5);
      expect(maxAbsDiff(a.logits, await blockByBlock(s2))).toBeLessThan(1e-5);
    } finally {
      await s2.release();
    }
  });

  it('fused q/k/v and gate/up linears give the same logits', async () => {
    const fused = buildTinyModel(path.join(tmp, 'fused'), { seed: 7, fuseLinears: true, manifest: { block_size: BLOCK } });
    const s2 = await ort.InferenceSession.create(path.join(fused.dir, 'model.onnx'));
    try {
      const a = await forward(session, L, IDS, 0, cacheOf(), blockCausal(BLOCK));
      expect(maxAbsDiff(a.logits, await blockByBlock(s2))).toBeLessThan(1e-5);
    } finally {
      await s2.release();
    }
  });

  it('writes external data past the threshold, 64-byte aligned, and ORT reads it', async () => {
    const a = tiny.manifest.architecture;
    const out = path.join(tmp, 'ext', 'model.onnx');
    const r = buildDecoderOnnx(a, 128, tiny.weights, { outFile: out, externalDataThreshold: 1000 });
    expect(r.externalData).toBe(true);
    expect(fs.statSync(out).size).toBeLessThan(20_000);
    expect(fs.statSync(`${out}.data`).size).toBeGreaterThanOrEqual(r.weightBytes - 10_000);
    expect(inspectOnnx(out).externalFiles).toEqual(['model.onnx.data']);
    const s2 = await ort.InferenceSession.create(out);
    try {
      const x = await forward(session, L, IDS, 0, cacheOf(), blockCausal(BLOCK));
      const y = await forward(s2, L, IDS, 0, cacheOf(), blockCausal(BLOCK));
      expect(maxAbsDiff(x.logits, y.logits)).toBe(0);
    } finally {
      await s2.release();
    }
    expect(buildDecoderOnnx(a, 128, tiny.weights, { externalDataThreshold: 1e12 }).externalData).toBe(false);
    expect(() => buildDecoderOnnx(a, 128, tiny.weights, { externalData: true })).toThrow(/external data needs an outFile/);
  });

  it('rows of a batch are independent (each row its own mask, positions and past)', async () => {
    const P = 4;
    const S = 4;
    const Hkv = arch.num_key_value_heads;
    const Dh = arch.head_dim;
    // per row: run its first block alone to get a past, then its second block alone
    const rows = [IDS.slice(0, 8), IDS.slice(4, 12).reverse()];
    const alone: Float32Array[] = [];
    const pasts: Cache[] = [];
    for (const r of rows) {
      const first = await forward(session, L, r.slice(0, P), 0, cacheOf(), blockCausal(BLOCK));
      pasts.push(first.present);
      alone.push((await forward(session, L, r.slice(P), P, first.present, rows.indexOf(r) === 0 ? blockCausal(BLOCK) : causal)).logits);
    }
    const stack = (ts: ort.Tensor[]) => {
      const out = new Float32Array(ts.reduce((n, t) => n + t.data.length, 0));
      let o = 0;
      for (const t of ts) {
        out.set(t.data as Float32Array, o);
        o += t.data.length;
      }
      return new ort.Tensor('float32', out, [ts.length, Hkv, P, Dh]);
    };
    const mask = new Float32Array(2 * S * (P + S));
    rows.forEach((_, b) => {
      const allow = b === 0 ? blockCausal(BLOCK) : causal;
      for (let s = 0; s < S; s++) for (let t = 0; t < P + S; t++) mask[(b * S + s) * (P + S) + t] = allow(P + s, t) ? 0 : -1e9;
    });
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(rows.flatMap((r) => r.slice(P)).map(BigInt)), [2, S]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from([4, 5, 6, 7, 4, 5, 6, 7].map(BigInt)), [2, S]),
      attention_mask: new ort.Tensor('float32', mask, [2, 1, S, P + S]),
      ...allRowsDrawn(2, S),
    };
    for (let i = 0; i < L; i++) {
      feeds[`past_key.${i}`] = stack(pasts.map((p) => p.keys[i]));
      feeds[`past_value.${i}`] = stack(pasts.map((p) => p.values[i]));
    }
    const out = await session.run(feeds);
    const lg = out.logits.data as Float32Array;
    const V = lg.length / 2;
    expect(maxAbsDiff(lg.subarray(0, V), alone[0])).toBeLessThan(1e-5);
    expect(maxAbsDiff(lg.subarray(V), alone[1])).toBeLessThan(1e-5);
    expect(out['present_key.1'].dims).toEqual([2, Hkv, S, Dh]);
  });

  it('loads through loadModelDir and opens a session on request', async () => {
    const m = await loadModelDir(tiny.dir, { session: true });
    expect(m.session!.inputNames).toContain('past_key.1');
    expect(m.session!.outputNames).toContain('present_value.1');
    expect(m.tokenizer.decode(m.tokenizer.encode('hi 42'))).toBe('hi 42');
    await m.session!.release();
  });
});
