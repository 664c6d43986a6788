import {
  blockParams,
  dequantizeBlockwise,
  dequantizeInt8,
  packLowFirst,
  packMatMulNBits,
  quantizeBlockwise,
  quantizeInt8PerChannel,
  unpackLowFirst,
} from './rtn';
import { randomWeights } from './synthetic';

function withOutliers(K: number, N: number, seed: number): Float32Array {
  const w = randomWeights(K, N, seed);
  w[3 * N + 1] = 1.7; // one large weight: its column/block gets a coarse scale, others must not
  w[10 * N + 5] = -2.3;
  return w;
}

describe('int8 per-channel RTN', () => {
  const K = 96,
    N = 40;
  const w = withOutliers(K, N, 7);
  const q = quantizeInt8PerChannel(w, K, N);
  const d = dequantizeInt8(q);

  test('error of every weight is at most half its channel scale', () => {
    let maxRel = 0;
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) maxRel = Math.max(maxRel, Math.abs(d[k * N + n] - w[k * N + n]) / q.scales[n]);
    expect(maxRel).toBeLessThanOrEqual(0.5 * (1 + 1e-6));
    expect(maxRel).toBeGreaterThan(0.4); // it does round
  });

  test('scales follow each channel max, so an outlier only coarsens its own channel', () => {
    expect(q.scales[1]).toBeCloseTo(1.7 / 127, 6);
    expect(q.scales[5]).toBeCloseTo(2.3 / 127, 6);
    expect(q.scales[0]).toBeLessThan(q.scales[1] / 5);
    expect(Math.max(...q.q)).toBe(127);
    expect(Math.min(...q.q)).toBeGreaterThanOrEqual(-127);
  });

  test('an all-zero channel stays exactly zero', () => {
    const z = new Float32Array(8 * 2);
    z[1] = 0.5;
    const r = dequantizeInt8(quantizeInt8PerChannel(z, 8, 2));
    for (let k = 0; k < 8; k++) expect(r[k * 2]).toBe(0);
  });
});

describe.each([
  [4, 32],
  [4, 128],
  [3, 32],
  [3, 64],
])('%i-bit block RTN, block %i', (bits, blockSize) => {
  const K = 200,
    N = 24; // K not a multiple of the block: the last block is padded
  const w = withOutliers(K, N, 11);
  const q = quantizeBlockwise(w, K, N, { bits, blockSize });
  const d = dequantizeBlockwise(q);
  const qmax = (1 << bits) - 1;

  test('codes and zero points are in range', () => {
    expect(q.kBlocks).toBe(Math.ceil(K / blockSize));
    expect(Math.max(...q.codes)).toBeLessThanOrEqual(qmax);
    expect(Math.max(...q.zeroPoints)).toBeLessThanOrEqual(qmax);
  });

  test('error of every weight is at most one step of its block, and on average about a quarter step', () => {
    let sumRel = 0;
    let maxRel = 0;
    for (let n = 0; n < N; n++)
      for (let k = 0; k < K; k++) {
        const s = q.scales[n * q.kBlocks + Math.floor(k / blockSize)];
        const rel = Math.abs(d[k * N + n] - w[k * N + n]) / s;
        maxRel = Math.max(maxRel, rel);
        sumRel += rel;
      }
    expect(maxRel).toBeLessThanOrEqual(1 + 1e-5);
    const meanRel = sumRel / (K * N);
    expect(meanRel).toBeGreaterThan(0.15);
    expect(meanRel).toBeLessThan(0.35);
  });

  test('the step is the block range over 2^bits - 1', () => {
    for (let n = 0; n < N; n++) {
      let lo = 0,
        hi = 0;
      for (let k = 0; k < Math.min(K, blockSize); k++) {
        lo = Math.min(lo, w[k * N + n]);
        hi = Math.max(hi, w[k * N + n]);
      }
      expect(q.scales[n * q.kBlocks]).toBeCloseTo((hi - lo) / qmax, 6);
    }
  });

  test('zero is represented exactly', () => {
    const { scale, zp } = blockParams(-0.3, 0.9, qmax);
    expect((zp - zp) * scale).toBe(0);
    expect(zp).toBeGreaterThanOrEqual(0);
    expect(zp).toBeLessThanOrEqual(qmax);
  });
});

test('fewer bits means larger error (int8 < int4 < int3)', () => {
  const K = 256,
    N = 64;
  const w = randomWeights(K, N, 5);
  const rmse = (d: Float32Array) => Math.sqrt(d.reduce((s, v, i) => s + (v - w[i]) ** 2, 0) / d.length);
  const e8 = rmse(dequantizeInt8(quantizeInt8PerChannel(w, K, N)));
  const e4 = rmse(dequantizeBlockwise(quantizeBlockwise(w, K, N, { bits: 4, blockSize: 32 })));
  const e3 = rmse(dequantizeBlockwise(quantizeBlockwise(w, K, N, { bits: 3, blockSize: 32 })));
  const e4g128 = rmse(dequantizeBlockwise(quantizeBlockwise(w, K, N, { bits: 4, blockSize: 128 })));
  expect(e8).toBeLessThan(e4);
  expect(e4).toBeLessThan(e3);
  expect(e4).toBeLessThan(e4g128); // smaller groups, finer scales
});

describe('MatMulNBits packing', () => {
  test('low nibble first, round trip', () => {
    const v = Uint8Array.from([1, 2, 15, 0, 7, 9]);
    const p = packLowFirst(v, 4);
    expect([...p]).toEqual([0x21, 0x0f, 0x97]);
    expect([...unpackLowFirst(p, 4, 6)]).toEqual([...v]);
    expect([...packLowFirst(Uint8Array.from([1, 2, 3, 0]), 2)]).toEqual([0b00111001]);
  });

  test('B is [N, kBlocks, blockSize/2] holding each column transposed; zero points packed per row', () => {
    const K = 40,
      N = 3;
    const w = randomWeights(K, N, 9);
    const q = quantizeBlockwise(w, K, N, { bits: 4, blockSize: 16 });
    const p = packMatMulNBits(q);
    expect(p.bits).toBe(4);
    expect(p.bDims).toEqual([3, 3, 8]);
    expect(p.B.length).toBe(3 * 3 * 8);
    expect(p.zeroPoints.length).toBe(3 * 2); // 3 blocks -> 2 bytes per row
    const codes = unpackLowFirst(p.B, 4, N * 48);
    for (let n = 0; n < N; n++) for (let k = 0; k < 48; k++) expect(codes[n * 48 + k]).toBe(q.codes[n * 48 + k]);
    const zps = unpackLowFirst(p.zeroPoints.subarray(2, 4), 4, 3);
    expect([...zps]).toEqual([...q.zeroPoints.subarray(3, 6)]);
  });

  test('int3 codes go into 4-bit containers', () => {
    const q = quantizeBlockwise(randomWeights(32, 2, 1), 32, 2, { bits: 3, blockSize: 32 });
    const p = packMatMulNBits(q);
    expect(p.bits).toBe(4);
    expect(Math.max(...unpackLowFirst(p.B, 4, 64))).toBeLessThanOrEqual(7);
  });
});

describe('bad input is rejected with a clear error', () => {
  const w = randomWeights(32, 4, 1);
  test.each([
    [{ bits: 4, blockSize: 24 }, /power of two >= 16/],
    [{ bits: 4, blockSize: 8 }, /power of two >= 16/],
    [{ bits: 5, blockSize: 32 }, /bits must be/],
  ])('%j', (opts, msg) => expect(() => quantizeBlockwise(w, 32, 4, opts)).toThrow(msg));
  test('shape mismatch', () => {
    expect(() => quantizeBlockwise(w, 32, 5, { bits: 4, blockSize: 32 })).toThrow(/needs 160/);
    expect(() => quantizeInt8PerChannel(w, 0, 4)).toThrow(/bad weight shape/);
  });
});
