/** @jest-environment ./libs/model/src/testing/ort-environment.js */
// The quantized graph runs in onnxruntime and computes what the quantization math says it should.
import * as ort from 'onnxruntime-node';
import { floatTensor, parseOnnx } from './onnx';
import { findLinears, quantizeOnnx, type Scheme } from './quantize';
import { dequantizeBlockwise, dequantizeInt8, quantizeBlockwise, quantizeInt8PerChannel } from './rtn';
import { buildLinearStack, randomWeights } from './synthetic';

const K = 64,
  H = 160,
  V = 48,
  M = 5;
const w1 = randomWeights(K, H, 1);
const w2 = randomWeights(H, V, 2, 0.08);
w2[7 * V + 3] = 0.9; // an outlier weight
const fp32 = buildLinearStack({
  layers: [
    { name: 'mlp.w1', K, N: H, w: w1 },
    { name: 'lm_head.weight', K: H, N: V, w: w2 },
  ],
});
const x = randomWeights(M, K, 3, 1);

// 'all' is what the engine uses (ORT may fuse DequantizeLinear -> MatMul into its own kernels);
// 'basic' runs the graph as written, to check the stored tensors bit for bit.
async function run(bytes: Uint8Array, level: 'basic' | 'all' = 'all'): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: level });
  try {
    const r = await s.run({ x: new ort.Tensor('float32', x, [M, K]) });
    return r.logits.data as Float32Array;
  } finally {
    await s.release();
  }
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

function dequantized(scheme: Scheme, w: Float32Array, k: number, n: number, g: number): Float32Array {
  if (scheme === 'int8') return dequantizeInt8(quantizeInt8PerChannel(w, k, n));
  return dequantizeBlockwise(quantizeBlockwise(w, k, n, { bits: scheme === 'int4' ? 4 : 3, blockSize: g }));
}

let ref: Float32Array;
beforeAll(async () => {
  ref = await run(fp32);
});

describe.each([
  ['int8', 32, 0.04],
  ['int4', 32, 0.15],
  ['int4', 64, 0.15],
  ['int3', 32, 0.3],
] as const)('%s g%i', (scheme, groupSize, bound) => {
  let out: Float32Array; // default options, as served
  let bytes: Uint8Array;
  let exact: Uint8Array; // accuracy_level 0: float activations, so the result is the dequantized weights' exactly
  beforeAll(async () => {
    bytes = quantizeOnnx(parseOnnx(fp32), { scheme, groupSize, keepLmHead: false }).bytes;
    exact = quantizeOnnx(parseOnnx(fp32), { scheme, groupSize, accuracyLevel: 0, keepLmHead: false }).bytes;
    out = await run(bytes);
  });

  test('onnxruntime computes exactly the dequantized weights (layout, nibble order, zero points)', async () => {
    const deq = buildLinearStack({
      layers: [
        { name: 'mlp.w1', K, N: H, w: dequantized(scheme, w1, K, H, groupSize) },
        { name: 'lm_head.weight', K: H, N: V, w: dequantized(scheme, w2, H, V, groupSize) },
      ],
    });
    const expected = await run(deq, 'basic');
    const got = await run(exact, 'basic');
    expect(maxAbsDiff(got, expected)).toBeLessThan(1e-4 * maxAbs(expected));
  });

  test(`logits stay within ${bound * 100}% of the fp32 logits' range, and do change`, () => {
    const err = maxAbsDiff(out, ref);
    expect(err).toBeLessThan(bound * maxAbs(ref));
    expect(err).toBeGreaterThan(0);
  });

  test('the model is smaller and has no float MatMul weights left', () => {
    expect(bytes.length).toBeLessThan(fp32.length * (scheme === 'int8' ? 0.3 : 0.2));
    expect(findLinears(parseOnnx(bytes))).toHaveLength(0);
  });
});

test('by default the logits layer stays float32 and is recorded', async () => {
  const q = quantizeOnnx(parseOnnx(fp32), { scheme: 'int4' });
  expect(q.record.kept_fp32).toEqual(['lm_head.weight']);
  const m = parseOnnx(q.bytes);
  expect(findLinears(m).map((l) => l.weight)).toEqual(['lm_head.weight']);
  expect([...floatTensor(m, 'lm_head.weight').data]).toEqual([...w2]);
  const out = await run(q.bytes);
  expect(maxAbsDiff(out, ref)).toBeLessThan(0.1 * maxAbs(ref));
});
