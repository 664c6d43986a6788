// GPTQ-style weight quantization (Frantar et al., "GPTQ", 2022), written from the paper's algorithm:
// quantize one input dimension at a time and push each column's rounding error onto the columns not
// yet quantized, weighted by the inverse Hessian of the layer's inputs (H = 2 X^T X over calibration
// tokens). The result has the same storage as RTN (codes, scales, zero points), so it runs on the
// same kernels; only the choice of codes differs.
//
// Simplifications: one calibration pass with float activations for every layer (not layer-by-layer
// on already-quantized inputs); no activation-order permutation; scales fixed per group when the
// group starts, from the weights as updated so far (as the reference algorithm does).
import { type BlockWeights, blockParams, checkBlockOptions } from './rtn';

/** Running X^T X of a linear layer's input, for H. */
export class HessianAccumulator {
  readonly xtx: Float64Array;
  tokens = 0;
  constructor(readonly K: number) {
    this.xtx = new Float64Array(K * K);
  }

  /** x: [tokens, K] row-major. */
  add(x: Float32Array): void {
    const K = this.K;
    if (x.length % K !== 0) throw new Error(`activation of ${x.length} values is not a multiple of K=${K}`);
    const T = x.length / K;
    const h = this.xtx;
    for (let t = 0; t < T; t++) {
      const row = t * K;
      for (let i = 0; i < K; i++) {
        const xi = x[row + i];
        if (xi === 0) continue;
        const hi = i * K;
        for (let j = i; j < K; j++) h[hi + j] += xi * x[row + j];
      }
    }
    this.tokens += T;
  }

  /** Symmetric H = 2 X^T X / tokens. */
  hessian(): Float64Array {
    const K = this.K;
    const H = new Float64Array(K * K);
    const s = this.tokens ? 2 / this.tokens : 0;
    for (let i = 0; i < K; i++)
      for (let j = i; j < K; j++) {
        const v = this.xtx[i * K + j] * s;
        H[i * K + j] = v;
        H[j * K + i] = v;
      }
    return H;
  }
}

/** In-place lower Cholesky factor of a symmetric positive definite matrix (upper part zeroed). */
export function cholesky(A: Float64Array, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = A[j * n + j];
    for (let k = 0; k < j; k++) d -= L[j * n + k] ** 2;
    if (!(d > 0)) throw new Error(`matrix is not positive definite (pivot ${j} = ${d})`);
    const ljj = Math.sqrt(d);
    L[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = A[i * n + j];
      for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = s / ljj;
    }
  }
  return L;
}

/** Upper factor U with H^-1 = U^T U: what GPTQ's column updates use. */
export function inverseCholeskyUpper(H: Float64Array, n: number): Float64Array {
  const L = cholesky(H, n);
  // Linv = L^-1 (lower triangular), by forward substitution column by column.
  const Linv = new Float64Array(n * n);
  for (let c = 0; c < n; c++) {
    Linv[c * n + c] = 1 / L[c * n + c];
    for (let i = c + 1; i < n; i++) {
      let s = 0;
      for (let k = c; k < i; k++) s -= L[i * n + k] * Linv[k * n + c];
      Linv[i * n + c] = s / L[i * n + i];
    }
  }
  // Hinv = Linv^T Linv
  const Hinv = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = j; k < n; k++) s += Linv[k * n + i] * Linv[k * n + j];
      Hinv[i * n + j] = s;
      Hinv[j * n + i] = s;
    }
  const Lh = cholesky(Hinv, n);
  const U = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) U[i * n + j] = Lh[j * n + i];
  return U;
}

export interface GptqOptions {
  bits: number;
  blockSize: number;
  /** dampening added to H's diagonal, as a fraction of its mean (default 0.01). */
  damp?: number;
}

/** Block-quantizes a [K, N] weight with GPTQ error feedback. Same output as quantizeBlockwise. */
export function gptqBlockwise(w: Float32Array, K: number, N: number, H: Float64Array, opts: GptqOptions): BlockWeights {
  checkBlockOptions(opts);
  if (w.length !== K * N) throw new Error(`weight has ${w.length} values, shape [${K}, ${N}] needs ${K * N}`);
  if (H.length !== K * K) throw new Error(`Hessian is ${H.length} values, K=${K} needs ${K * K}`);
  const { bits, blockSize } = opts;
  const qmax = (1 << bits) - 1;
  const kBlocks = Math.ceil(K / blockSize);
  const padded = kBlocks * blockSize;

  // Wt: [N, K] working copy (rows = output channels), float64.
  const Wt = new Float64Array(N * K);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) Wt[n * K + k] = w[k * N + n];

  const Hd = Float64Array.from(H);
  let mean = 0;
  for (let i = 0; i < K; i++) mean += Hd[i * K + i];
  mean /= K;
  const dead: boolean[] = [];
  for (let i = 0; i < K; i++) {
    dead.push(Hd[i * K + i] === 0);
    if (dead[i]) Hd[i * K + i] = 1; // an input that is always 0: its weights do not matter
  }
  const damp = (opts.damp ?? 0.01) * (mean > 0 ? mean : 1);
  for (let i = 0; i < K; i++) Hd[i * K + i] += damp;
  const U = inverseCholeskyUpper(Hd, K);

  const codes = new Uint8Array(N * padded);
  const scales = new Float32Array(N * kBlocks);
  const zeroPoints = new Uint8Array(N * kBlocks);
  for (let n = 0; n < N; n++) {
    const row = Wt.subarray(n * K, (n + 1) * K);
    for (let i = 0; i < K; i++) if (dead[i]) row[i] = 0;
    let scale = 1;
    let zp = 0;
    for (let i = 0; i < K; i++) {
      const b = Math.floor(i / blockSize);
      if (i % blockSize === 0) {
        let lo = 0;
        let hi = 0;
        for (let k = i; k < Math.min(K, i + blockSize); k++) {
          if (row[k] < lo) lo = row[k];
          if (row[k] > hi) hi = row[k];
        }
        ({ scale, zp } = blockParams(lo, hi, qmax));
        scales[n * kBlocks + b] = scale;
        zeroPoints[n * kBlocks + b] = zp;
      }
      const c = Math.min(qmax, Math.max(0, Math.round(row[i] / scale) + zp));
      codes[n * padded + i] = c;
      const err = (row[i] - (c - zp) * scale) / U[i * K + i];
      const ui = i * K;
      for (let j = i + 1; j < K; j++) row[j] -= err * U[ui + j];
    }
    for (let k = K; k < padded; k++) codes[n * padded + k] = zeroPoints[n * kBlocks + kBlocks - 1];
  }
  return { K, N, bits, blockSize, kBlocks, codes, scales, zeroPoints };
}
