// Weight quantization math (pure, no onnxruntime).
//
// Weights are ONNX MatMul right-hand sides: W is [K, N] row-major (x[.., K] @ W -> [.., N]).
//
// int8: symmetric per output channel, scale_n = max_k |W[k,n]| / 127, q = round(W / scale) in
//   [-127, 127]. Served as DequantizeLinear(q, scale, axis=1) -> MatMul.
// int4 / int3: asymmetric per block of `blockSize` consecutive K values of one output column,
//   range [min(w, 0), max(w, 0)] mapped to codes 0..2^bits-1 with an integer zero point.
//   Served by com.microsoft MatMulNBits, which wants B transposed to [N, kBlocks, blob] with codes
//   packed low nibble first, scales [N * kBlocks] and zero points packed the same way. onnxruntime
//   has no 3-bit kernel, so int3 codes (0..7) are stored in 4-bit containers: the model keeps int3's
//   accuracy but int4's size.

export interface Int8Weights {
  K: number;
  N: number;
  /** [K, N], same layout as the float weight. */
  q: Int8Array;
  /** [N] */
  scales: Float32Array;
}

export function quantizeInt8PerChannel(w: Float32Array, K: number, N: number): Int8Weights {
  checkShape(w, K, N);
  const absmax = new Float32Array(N);
  for (let k = 0; k < K; k++) {
    const row = k * N;
    for (let n = 0; n < N; n++) {
      const a = Math.abs(w[row + n]);
      if (a > absmax[n]) absmax[n] = a;
    }
  }
  const scales = new Float32Array(N);
  const inv = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    scales[n] = absmax[n] > 0 ? absmax[n] / 127 : 1;
    inv[n] = 1 / scales[n];
  }
  const q = new Int8Array(K * N);
  for (let k = 0; k < K; k++) {
    const row = k * N;
    for (let n = 0; n < N; n++) q[row + n] = clamp(Math.round(w[row + n] * inv[n]), -127, 127);
  }
  return { K, N, q, scales };
}

export function dequantizeInt8(q: Int8Weights): Float32Array {
  const out = new Float32Array(q.K * q.N);
  for (let k = 0; k < q.K; k++) for (let n = 0; n < q.N; n++) out[k * q.N + n] = q.q[k * q.N + n] * q.scales[n];
  return out;
}

export interface BlockWeights {
  K: number;
  N: number;
  bits: number;
  blockSize: number;
  kBlocks: number;
  /** unpacked codes [N, kBlocks * blockSize] (K padded to whole blocks; padding holds the zero point). */
  codes: Uint8Array;
  /** [N * kBlocks] */
  scales: Float32Array;
  /** [N * kBlocks], integer codes in 0..2^bits-1. */
  zeroPoints: Uint8Array;
}

export interface BlockOptions {
  bits: number;
  blockSize: number;
}

export function checkBlockOptions({ bits, blockSize }: BlockOptions): void {
  if (![2, 3, 4, 8].includes(bits)) throw new Error(`bits must be 2, 3, 4 or 8, got ${bits}`);
  if (!Number.isInteger(blockSize) || blockSize < 16 || (blockSize & (blockSize - 1)) !== 0)
    throw new Error(`block size must be a power of two >= 16, got ${blockSize}`);
}

/** Asymmetric round-to-nearest, one scale + zero point per block of K values of each column. */
export function quantizeBlockwise(w: Float32Array, K: number, N: number, opts: BlockOptions): BlockWeights {
  checkShape(w, K, N);
  checkBlockOptions(opts);
  const { bits, blockSize } = opts;
  const qmax = (1 << bits) - 1;
  const kBlocks = Math.ceil(K / blockSize);
  const padded = kBlocks * blockSize;
  const codes = new Uint8Array(N * padded);
  const scales = new Float32Array(N * kBlocks);
  const zeroPoints = new Uint8Array(N * kBlocks);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const k0 = b * blockSize;
      const k1 = Math.min(K, k0 + blockSize);
      let lo = 0;
      let hi = 0;
      for (let k = k0; k < k1; k++) {
        const v = w[k * N + n];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const { scale, zp } = blockParams(lo, hi, qmax);
      scales[n * kBlocks + b] = scale;
      zeroPoints[n * kBlocks + b] = zp;
      const inv = 1 / scale;
      const base = n * padded;
      for (let k = k0; k < k0 + blockSize; k++) codes[base + k] = k < k1 ? clamp(Math.round(w[k * N + n] * inv) + zp, 0, qmax) : zp;
    }
  }
  return { K, N, bits, blockSize, kBlocks, codes, scales, zeroPoints };
}

/** Scale and zero point for a block whose values span [lo, hi] (lo <= 0 <= hi). */
export function blockParams(lo: number, hi: number, qmax: number): { scale: number; zp: number } {
  if (hi - lo === 0) return { scale: 1, zp: Math.ceil(qmax / 2) };
  // float32 scale, as stored: the zero point is derived from the value the kernel will use.
  const scale = Math.fround((hi - lo) / qmax);
  return { scale, zp: clamp(Math.round(-lo / scale), 0, qmax) };
}

/** Back to a float [K, N] weight: (code - zp) * scale. */
export function dequantizeBlockwise(q: BlockWeights): Float32Array {
  const out = new Float32Array(q.K * q.N);
  const padded = q.kBlocks * q.blockSize;
  for (let n = 0; n < q.N; n++)
    for (let k = 0; k < q.K; k++) {
      const b = Math.floor(k / q.blockSize);
      const s = q.scales[n * q.kBlocks + b];
      out[k * q.N + n] = (q.codes[n * padded + k] - q.zeroPoints[n * q.kBlocks + b]) * s;
    }
  return out;
}

/** Bits per code in the packed MatMulNBits tensor: 3-bit codes live in 4-bit containers. */
export function containerBits(bits: number): number {
  return bits === 3 ? 4 : bits;
}

/** Packs codes (each < 2^bits) low-first into bytes; `values.length * bits` must be a multiple of 8. */
export function packLowFirst(values: Uint8Array, bits: number): Uint8Array {
  if (8 % bits !== 0) throw new Error(`cannot pack ${bits}-bit values into bytes`);
  const per = 8 / bits;
  const out = new Uint8Array(Math.ceil(values.length / per));
  for (let i = 0; i < values.length; i++) out[(i / per) | 0] |= values[i] << ((i % per) * bits);
  return out;
}

export function unpackLowFirst(packed: Uint8Array, bits: number, count: number): Uint8Array {
  const per = 8 / bits;
  const mask = (1 << bits) - 1;
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = (packed[(i / per) | 0] >> ((i % per) * bits)) & mask;
  return out;
}

export interface MatMulNBitsTensors {
  /** attribute `bits` of the node (4 for int3). */
  bits: number;
  /** uint8 [N, kBlocks, blobSize] */
  B: Uint8Array;
  bDims: [number, number, number];
  /** float [N * kBlocks] */
  scales: Float32Array;
  /** uint8 [N * ceil(kBlocks * bits / 8)] */
  zeroPoints: Uint8Array;
}

/** The MatMulNBits inputs for block-quantized weights. */
export function packMatMulNBits(q: BlockWeights): MatMulNBitsTensors {
  const bits = containerBits(q.bits);
  const blob = (q.blockSize * bits) / 8;
  const B = packLowFirst(q.codes, bits); // rows are whole blocks, so per-row packing = global packing
  const zpPerRow = Math.ceil((q.kBlocks * bits) / 8);
  const zeroPoints = new Uint8Array(q.N * zpPerRow);
  for (let n = 0; n < q.N; n++) {
    const row = packLowFirst(padTo(q.zeroPoints.subarray(n * q.kBlocks, (n + 1) * q.kBlocks), (zpPerRow * 8) / bits), bits);
    zeroPoints.set(row, n * zpPerRow);
  }
  return { bits, B, bDims: [q.N, q.kBlocks, blob], scales: q.scales, zeroPoints };
}

function padTo(v: Uint8Array, len: number): Uint8Array {
  if (v.length === len) return v;
  const out = new Uint8Array(len);
  out.set(v);
  return out;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

function checkShape(w: Float32Array, K: number, N: number): void {
  if (!Number.isInteger(K) || !Number.isInteger(N) || K < 1 || N < 1) throw new Error(`bad weight shape [${K}, ${N}]`);
  if (w.length !== K * N) throw new Error(`weight has ${w.length} values, shape [${K}, ${N}] needs ${K * N}`);
}
