import { HessianAccumulator, cholesky, gptqBlockwise, inverseCholeskyUpper } from './gptq';
import { dequantizeBlockwise, quantizeBlockwise } from './rtn';
import { randomWeights } from './synthetic';

/** Correlated inputs, as real activations are: T tokens of low-rank structure plus noise, one loud channel. */
function activations(T: number, K: number, seed: number): Float32Array {
  const r = 6;
  const z = randomWeights(T, r, seed, 1);
  const a = randomWeights(r, K, seed + 1, 1);
  const noise = randomWeights(T, K, seed + 2, 0.1);
  const x = new Float32Array(T * K);
  for (let t = 0; t < T; t++)
    for (let k = 0; k < K; k++) {
      let s = noise[t * K + k];
      for (let i = 0; i < r; i++) s += z[t * r + i] * a[i * K + k];
      x[t * K + k] = k === 3 ? s * 8 : s;
    }
  return x;
}

function outputError(x: Float32Array, T: number, K: number, N: number, w: Float32Array, wq: Float32Array): number {
  let e = 0;
  for (let t = 0; t < T; t++)
    for (let n = 0; n < N; n++) {
      let d = 0;
      for (let k = 0; k < K; k++) d += x[t * K + k] * (w[k * N + n] - wq[k * N + n]);
      e += d * d;
    }
  return e;
}

test('Cholesky and the inverse-Hessian factor are right: U^T U H = I', () => {
  const n = 5;
  const x = activations(40, n, 3);
  const acc = new HessianAccumulator(n);
  acc.add(x);
  const H = acc.hessian();
  for (let i = 0; i < n; i++) H[i * n + i] += 0.01;
  const L = cholesky(H, n);
  const U = inverseCholeskyUpper(H, n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let llt = 0;
      let inv = 0;
      for (let k = 0; k < n; k++) llt += L[i * n + k] * L[j * n + k];
      expect(llt).toBeCloseTo(H[i * n + j], 9);
      // (U^T U H)[i][j]
      for (let k = 0; k < n; k++) {
        let utu = 0;
        for (let m = 0; m < n; m++) utu += U[m * n + i] * U[m * n + k];
        inv += utu * H[k * n + j];
      }
      expect(inv).toBeCloseTo(i === j ? 1 : 0, 6);
    }
  expect(() => cholesky(Float64Array.from([1, 2, 2, 1]), 2)).toThrow(/not positive definite/);
});

test.each([
  [4, 32],
  [3, 32],
  [4, 64],
])('%i-bit g%i: GPTQ has lower layer-output error than RTN on the calibration inputs', (bits, blockSize) => {
  const T = 256,
    K = 128,
    N = 48;
  const x = activations(T, K, 11);
  const w = randomWeights(K, N, 12);
  const acc = new HessianAccumulator(K);
  acc.add(x.subarray(0, (T / 2) * K));
  acc.add(x.subarray((T / 2) * K));
  expect(acc.tokens).toBe(T);
  const g = gptqBlockwise(w, K, N, acc.hessian(), { bits, blockSize });
  const r = quantizeBlockwise(w, K, N, { bits, blockSize });
  const eG = outputError(x, T, K, N, w, dequantizeBlockwise(g));
  const eR = outputError(x, T, K, N, w, dequantizeBlockwise(r));
  expect(eG).toBeLessThan(0.8 * eR);
  // and the stored format is the same as RTN's
  expect(g.codes.length).toBe(r.codes.length);
  expect(Math.max(...g.codes)).toBeLessThanOrEqual((1 << bits) - 1);
});

test('an input channel that is always zero gets zero weights, and bad shapes are rejected', () => {
  const K = 32,
    N = 4;
  const x = activations(64, K, 5);
  for (let t = 0; t < 64; t++) x[t * K + 7] = 0;
  const acc = new HessianAccumulator(K);
  acc.add(x);
  const d = dequantizeBlockwise(gptqBlockwise(randomWeights(K, N, 1), K, N, acc.hessian(), { bits: 4, blockSize: 32 }));
  for (let n = 0; n < N; n++) expect(d[7 * N + n]).toBe(0);
  expect(() => gptqBlockwise(randomWeights(K, N, 1), K, N, new Float64Array(4), { bits: 4, blockSize: 32 })).toThrow(/Hessian/);
  expect(() => acc.add(new Float32Array(33))).toThrow(/multiple of K/);
});
