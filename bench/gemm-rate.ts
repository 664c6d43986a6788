// The machine's GEMM rate, measured with onnxruntime-node itself, and the FLOP count of one forward of
// the served graph: what bench:engine and bench:geometry compare their achieved GFLOP/s with.
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import type * as Ort from 'onnxruntime-node';
import { create } from '@bufbuild/protobuf';
import { encodeModel, GraphProtoSchema, modelProto, nodeProto, tensorProto, TensorType, valueInfoProto } from '@dllm/onnx';

/** The decoder geometry the FLOP count needs (a manifest's `architecture` has these fields). */
export interface FlopArch {
  hidden_size: number;
  intermediate_size: number;
  num_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
}

/**
 * The shape work of one or more forwards, summed over them (every count includes padding: it is what
 * onnxruntime computes).
 * - positions: new positions run through the layers, sum of B x S (`input_ids` elements).
 * - logitRows: rows through the LM head, sum of B x R (`logit_index` elements; 0 for a forward that
 *   fetches no draw statistics, where onnxruntime skips the head).
 * - keys: query-key pairs per layer and head, sum of B x S x (P + S) (`attention_mask` elements).
 */
export interface ForwardWork {
  positions: number;
  logitRows: number;
  keys: number;
}

/**
 * FLOPs of forwards with the given work, 2 per multiply-add (MAC):
 *
 *   FLOPs = 2 x [ positions x L x (H x q + 2 x H x kv + q x H + 3 x H x I)     (Q, K, V, O; gate, up, down)
 *               + logitRows x H x V                                             (LM head)
 *               + keys x L x q x 2 ]                                            (Q.K^T scores and P.V)
 *
 * with L layers, H hidden size, I intermediate size, q = heads x head_dim, kv = KV heads x head_dim,
 * V vocabulary. Norms, RoPE, softmax, biases and the embedding lookup are left out (O(H) per position).
 * One forward of B rows, S new positions, P cached positions, every position drawn:
 * `forwardFlops(arch, V, { positions: B*S, logitRows: B*S, keys: B*S*(P+S) })`.
 */
export function forwardFlops(arch: FlopArch, vocabSize: number, work: ForwardWork): number {
  const H = arch.hidden_size;
  const qd = arch.num_attention_heads * arch.head_dim;
  const kvd = arch.num_key_value_heads * arch.head_dim;
  const perPosition = arch.num_layers * (H * qd + 2 * H * kvd + qd * H + 3 * H * arch.intermediate_size);
  const macs = work.positions * perPosition + work.logitRows * H * vocabSize + work.keys * arch.num_layers * qd * 2;
  return 2 * macs;
}

/** One GEMM shape: [M x K] x [K x N]. */
export interface GemmShape {
  M: number;
  K: number;
  N: number;
}

/** A measured GEMM: its shape, median ms per session.run, and GFLOP/s = 2MKN / median seconds / 1e9. */
export interface GemmRate extends GemmShape {
  ms: number;
  gflops: number;
}

/** The median of a non-empty list. */
export function median(xs: readonly number[]): number {
  if (!xs.length) throw new Error('median of an empty list');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** GFLOP/s of `flops` done in `ms` milliseconds. */
export function gflopsPerSecond(flops: number, ms: number): number {
  return flops / (ms / 1000) / 1e9;
}

/**
 * Parses `MxKxN[,MxKxN...]` (e.g. `1x192x512,1024x1024x1024`) into GEMM shapes; throws on anything
 * else (positive integers only).
 */
export function parseGemmShapes(s: string): GemmShape[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
    .map((x) => {
      const m = /^(\d+)x(\d+)x(\d+)$/.exec(x);
      const [M, K, N] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
      if (!m || !(M > 0 && K > 0 && N > 0)) throw new Error(`GEMM shape must be MxKxN with positive integers, got '${x}'`);
      return { M, K, N };
    });
}

/**
 * The shapes a model's forwards are made of: its widest linear, [S x hidden] x [hidden x intermediate],
 * at S = 1 (an AR step), 8 (a sub-block step), 32 (a block window), 256 (8 rows of 32-slot windows),
 * and the square 1024^3 GEMM. The machine's GEMM rate (referenceRate) is the fastest of them.
 */
export function modelGemmShapes(arch: Pick<FlopArch, 'hidden_size' | 'intermediate_size'>): GemmShape[] {
  return [1, 8, 32, 256].map((M) => ({ M, K: arch.hidden_size, N: arch.intermediate_size })).concat([SQUARE_GEMM]);
}

/** A square 1024^3 fp32 GEMM (2.1 GFLOP), large enough to be compute-bound. */
export const SQUARE_GEMM: GemmShape = { M: 1024, K: 1024, N: 1024 };

/** Timings per shape in measureGemmRates (the median is kept), each >= GEMM_MIN_MS ms of calls. */
export const GEMM_MIN_MS = 50;
export const GEMM_SAMPLES = 7;

const fill = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => (((i * 2654435761 + seed) >>> 0) / 4294967296 - 0.5) * 0.1);

/**
 * A one-node ONNX graph Y = MatMul(A [M,K], B [K,N]), fp32 (opset 17), A fed and B a constant
 * initializer, as a model's weights are (onnxruntime prepacks constant B once at session load; a fed B
 * is packed again on every run, which cost small shapes up to half their rate).
 */
export function matMulModel(shape: GemmShape): Uint8Array {
  const F = TensorType.FLOAT;
  const b = fill(shape.K * shape.N, 2);
  const graph = create(GraphProtoSchema, {
    name: 'gemm',
    node: [nodeProto('MatMul', ['A', 'B'], ['Y'], 'matmul')],
    initializer: [tensorProto('B', F, [shape.K, shape.N], new Uint8Array(b.buffer, b.byteOffset, b.byteLength))],
    input: [valueInfoProto('A', F, [shape.M, shape.K])],
    output: [valueInfoProto('Y', F, [shape.M, shape.N])],
  });
  return encodeModel(modelProto(graph, [['', 17]]));
}

/**
 * Measures GFLOP/s of fp32 MatMul on onnxruntime-node with `threads` intra-op threads (1 inter-op,
 * optimization 'all', as the engine's sessions): one session per shape, one warm-up each, then
 * `samples` rounds over all shapes (interleaved, so load drift on a shared machine hits every shape
 * alike); a sample is the mean of as many back-to-back session.run calls as fill >= `minMs` ms, and
 * a shape's ms is its median sample. Small shapes include session.run's fixed cost (as the engine's
 * forwards do).
 */
export async function measureGemmRates(shapes: readonly GemmShape[], opts: { threads: number; samples?: number; minMs?: number }): Promise<GemmRate[]> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ort = require('onnxruntime-node') as typeof Ort;
  const samples = opts.samples ?? GEMM_SAMPLES;
  const minMs = opts.minMs ?? GEMM_MIN_MS;
  const runs: { session: Ort.InferenceSession; feeds: Record<string, Ort.Tensor>; ms: number[] }[] = [];
  try {
    for (const shape of shapes) {
      const session = await ort.InferenceSession.create(matMulModel(shape), {
        intraOpNumThreads: opts.threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
      });
      const feeds = { A: new ort.Tensor('float32', fill(shape.M * shape.K, 1), [shape.M, shape.K]) };
      runs.push({ session, feeds, ms: [] });
      await session.run(feeds);
    }
    for (let s = 0; s < samples; s++) {
      for (const r of runs) {
        let calls = 0;
        const t0 = performance.now();
        let t = t0;
        while (t - t0 < minMs || calls === 0) {
          await r.session.run(r.feeds);
          calls++;
          t = performance.now();
        }
        r.ms.push((t - t0) / calls);
      }
    }
  } finally {
    for (const r of runs) await r.session.release();
  }
  return shapes.map((shape, i) => {
    const ms = median(runs[i].ms);
    return { ...shape, ms, gflops: gflopsPerSecond(2 * shape.M * shape.K * shape.N, ms) };
  });
}

/**
 * Several measurements of the same shapes (e.g. one per bench round) combined: per shape the median
 * of the measured ms, GFLOP/s recomputed from it. Throws when the measurements' shapes differ.
 */
export function combineGemmRates(measurements: readonly (readonly GemmRate[])[]): GemmRate[] {
  if (!measurements.length) throw new Error('no GEMM measurements to combine');
  const key = (r: GemmShape) => `${r.M}x${r.K}x${r.N}`;
  const shapes = measurements[0].map(key).join(',');
  for (const m of measurements) if (m.map(key).join(',') !== shapes) throw new Error(`GEMM measurements of different shapes: ${m.map(key)} vs ${shapes}`);
  return measurements[0].map((r, i) => {
    const ms = median(measurements.map((m) => m[i].ms));
    return { M: r.M, K: r.K, N: r.N, ms, gflops: gflopsPerSecond(2 * r.M * r.K * r.N, ms) };
  });
}

/**
 * The machine's GEMM rate (GFLOP/s): the fastest median among the measured shapes (a bench's "% GEMM"
 * is of this). Throws on an empty list.
 */
export function referenceRate(rates: readonly GemmRate[]): number {
  if (!rates.length) throw new Error('no GEMM rate was measured');
  return Math.max(...rates.map((r) => r.gflops));
}

/**
 * One line per shape, for a bench's output; `measurements` > 1 says the figures are medians over that
 * many measureGemmRates calls (combineGemmRates).
 */
export function formatGemmRates(rates: readonly GemmRate[], threads: number, measurements = 1): string {
  const ref = referenceRate(rates);
  const lines = rates.map((r) => `  [${r.M} x ${r.K}] x [${r.K} x ${r.N}]: ${r.ms.toFixed(3)} ms, ${r.gflops.toFixed(1)} GFLOP/s`);
  const over = measurements > 1 ? `, then the median of ${measurements} such measurements` : '';
  return [
    `GEMM rate (onnxruntime-node fp32 MatMul, ${threads} intra-op thread(s), median of ${GEMM_SAMPLES} samples of >= ${GEMM_MIN_MS} ms${over}; the machine's GEMM rate = the fastest shape: ${ref.toFixed(1)} GFLOP/s):`,
    ...lines,
  ].join('\n');
}

/**
 * measureGemmRates in a fresh child process (this file run as a script), so that the bench's own
 * threads (engine workers, other sessions) do not share its time: inside the bench:engine process the
 * same measurement read 20-39 GFLOP/s while a fresh process a minute later read 57-87 at the same load.
 */
export function measureGemmRatesInChild(shapes: readonly GemmShape[], threads: number): GemmRate[] {
  const arg = shapes.map((s) => `${s.M}x${s.K}x${s.N}`).join(',');
  const out = execFileSync(process.execPath, [...process.execArgv, __filename, '--shapes', arg, '--threads', String(threads)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out) as GemmRate[];
}

// As a script: node -r ./test/gateway.register.js bench/gemm-rate.ts --shapes 1x192x512,1024x1024x1024 [--threads 1]
// prints the measured rates as JSON (and the table on stderr).
if (require.main === module) {
  const { values } = parseArgs({ options: { shapes: { type: 'string', default: '1024x1024x1024' }, threads: { type: 'string', default: '1' } } });
  const threads = Number(values.threads);
  if (!Number.isInteger(threads) || threads < 1) throw new Error('--threads must be a positive integer');
  measureGemmRates(parseGemmShapes(values.shapes!), { threads }).then(
    (r) => {
      process.stderr.write(formatGemmRates(r, threads) + '\n');
      process.stdout.write(JSON.stringify(r) + '\n');
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
