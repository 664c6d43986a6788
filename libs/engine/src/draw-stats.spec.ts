/** @jest-environment ./libs/model/src/testing/ort-environment.js */
// The format-v2 draw head (libs/model logit-head.ts) on onnxruntime against the engine's JS reference
// (sampling.ts logitStatistics and greedy drawToken), on random logits.
import * as ort from 'onnxruntime-node';
import { DRAW_IO, OnnxGraph, TensorType, drawInputSpecs, drawOutputSpecs, emitDrawStatistics, gatherDrawRows } from '@dllm/model';
import { Sfc32 as Rng } from '@dllm/prng';
import { drawToken, logitStatistics } from './sampling';

/** A graph whose only work is the draw head: x [B,S,V] -> rows logit_index selects -> statistics. */
function headOnly(V: number): Uint8Array {
  const g = new OnnxGraph('draw_head');
  g.node('Identity', [gatherDrawRows(g, 'x')], [DRAW_IO.logits]);
  emitDrawStatistics(g, DRAW_IO.logits, V);
  return g.toModel([{ name: 'x', type: TensorType.FLOAT, shape: ['batch', 'seq', V] }, ...drawInputSpecs()], drawOutputSpecs(V)).toBytes();
}

describe('in-graph draw statistics (format dllm-farm/v2)', () => {
  const V = 257;
  let session: ort.InferenceSession;
  beforeAll(async () => {
    session = await ort.InferenceSession.create(
      headOnly(V),
      { intraOpNumThreads: 1, logSeverityLevel: 3 } /* ORT warns (W) that zero-draw statistics come back [B,0,V], not [B,0]: known, asserted below */,
    );
  });
  afterAll(() => session.release());

  const run = (x: Float32Array, B: number, S: number, index: number[], R: number, banned: number[]) =>
    session.run({
      x: new ort.Tensor('float32', x, [B, S, V]),
      logit_index: new ort.Tensor('int64', BigInt64Array.from(index.map(BigInt)), [B, R]),
      banned_token_ids: new ort.Tensor('int64', BigInt64Array.from(banned.map(BigInt)), [banned.length]),
    });

  it('argmax, max_prob, log_sum_exp and entropy equal the JS reference on random logits, with banned ids', async () => {
    const rng = new Rng(7);
    for (const [scale, banned] of [
      [1, [2]],
      [8, [2, 100]],
      [0.05, []],
      [30, [0, 256]],
    ] as Array<[number, number[]]>) {
      const B = 3;
      const S = 6;
      const R = 4;
      const x = Float32Array.from({ length: B * S * V }, () => (rng.next() * 2 - 1) * scale);
      // make a banned id the raw argmax of one row: the statistics must skip it
      if (banned.length) x[(1 * S + 2) * V + banned[0]] = 1000;
      const index = Array.from({ length: B * R }, (_, i) => (i * 5 + 2) % S); // includes repeats
      const out = await run(x, B, S, index, R, banned);
      expect(out.logits.dims).toEqual([B, R, V]);
      expect(out.argmax.dims).toEqual([B, R]);
      for (let b = 0; b < B; b++) {
        for (let k = 0; k < R; k++) {
          const j = b * R + k;
          const off = (b * S + index[j]) * V;
          const ref = logitStatistics(x, off, V, banned);
          expect(Number((out.argmax.data as BigInt64Array)[j])).toBe(ref.argmax);
          expect((out.max_prob.data as Float32Array)[j]).toBeCloseTo(ref.maxProb, 6);
          expect((out.log_sum_exp.data as Float32Array)[j]).toBeCloseTo(ref.logSumExp, 4);
          expect((out.entropy.data as Float32Array)[j]).toBeCloseTo(ref.entropy, 5);
          // the JS reference is the greedy draw the engine made from logits before format v2
          const d = drawToken(x, off, V, { temperature: 0, topK: 0, topP: 1 }, null, banned);
          expect([d.token, d.prob, d.entropy]).toEqual([ref.argmax, expect.closeTo(ref.maxProb, 12), expect.closeTo(ref.entropy, 9)]);
          // logits are the selected row, raw (no ban)
          expect(Array.from((out.logits.data as Float32Array).subarray(j * V, (j + 1) * V))).toEqual(Array.from(x.subarray(off, off + V)));
        }
      }
    }
  });

  it('ties go to the lowest id, as in drawToken', async () => {
    const x = new Float32Array(2 * V);
    x[5] = 3;
    x[9] = 3;
    const out = await run(x, 1, 2, [0, 1], 2, []);
    expect(Array.from(out.argmax.data as BigInt64Array)).toEqual([5n, 0n]);
    expect((out.entropy.data as Float32Array)[1]).toBeCloseTo(Math.log(V), 5);
  });

  it('R = 0 (a KV-only forward) returns empty outputs', async () => {
    const out = await run(new Float32Array(2 * 3 * V), 2, 3, [], 0, [2]);
    expect(out.logits.dims).toEqual([2, 0, V]);
    // ORT's reductions of an empty tensor keep the reduced axis ([2, 0, V]): what matters is no element.
    for (const n of ['argmax', 'max_prob', 'log_sum_exp', 'entropy']) expect([n, out[n].dims[0], out[n].dims[1], out[n].data.length]).toEqual([n, 2, 0, 0]);
  });
});
