// Kernel microbenchmark: how fast does onnxruntime (CPU) run a linear layer for each way we can
// store its weight? Decides which operator and accuracy_level `dllm-farm quantize` emits.
//   npm run build && node dist/bench/quant-kernels.js [--shapes 128x384,256x640] [--ms 400] [--threads 1]
// Each model is a chain of 8 layers K->N->K... (no activation) so session overhead is amortised.
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { buildLinearStack, parseOnnx, quantizeOnnx, randomWeights, type QuantizeOptions, type SyntheticLayer } from '@dllm/quant';

interface Variant {
  name: string;
  quant?: QuantizeOptions;
  level: 'basic' | 'all';
}

const VARIANTS: Variant[] = [
  { name: 'fp32 MatMul', level: 'all' },
  { name: 'int8 DQ->MatMul (as written, basic opt)', quant: { scheme: 'int8' }, level: 'basic' },
  { name: 'int8 DQ->MatMul (ORT all: fused)', quant: { scheme: 'int8' }, level: 'all' },
  { name: 'int8 MatMulNBits g32 acc0', quant: { scheme: 'int8', int8Kernel: 'matmulnbits', groupSize: 32, accuracyLevel: 0 }, level: 'all' },
  { name: 'int8 MatMulNBits g32 acc4', quant: { scheme: 'int8', int8Kernel: 'matmulnbits', groupSize: 32, accuracyLevel: 4 }, level: 'all' },
  { name: 'int4 MatMulNBits g32 acc0', quant: { scheme: 'int4', groupSize: 32, accuracyLevel: 0 }, level: 'all' },
  { name: 'int4 MatMulNBits g32 acc1', quant: { scheme: 'int4', groupSize: 32, accuracyLevel: 1 }, level: 'all' },
  { name: 'int4 MatMulNBits g32 acc4', quant: { scheme: 'int4', groupSize: 32, accuracyLevel: 4 }, level: 'all' },
  { name: 'int4 MatMulNBits g128 acc0', quant: { scheme: 'int4', groupSize: 128, accuracyLevel: 0 }, level: 'all' },
  { name: 'int4 MatMulNBits g128 acc4', quant: { scheme: 'int4', groupSize: 128, accuracyLevel: 4 }, level: 'all' },
];

async function timeModel(bytes: Uint8Array, level: 'basic' | 'all', M: number, K: number, ms: number, threads: number): Promise<number> {
  const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: level, intraOpNumThreads: threads, interOpNumThreads: 1 });
  const x = new ort.Tensor('float32', randomWeights(M, K, 5, 1), [M, K]);
  for (let i = 0; i < 5; i++) await s.run({ x });
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    await s.run({ x });
    n++;
  }
  const per = (performance.now() - t0) / n;
  await s.release();
  return per;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shapes: { type: 'string', default: '128x384,256x640' },
      ms: { type: 'string', default: '400' },
      threads: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
  });
  const shapes = values.shapes.split(',').map((s) => s.split('x').map(Number) as [number, number]);
  const ms = Number(values.ms);
  const threads = Number(values.threads);
  const rows: Record<string, unknown>[] = [];
  for (const [K, N] of shapes) {
    const layers: SyntheticLayer[] = [];
    for (let i = 0; i < 8; i++) {
      const [k, n] = i % 2 === 0 ? [K, N] : [N, K];
      layers.push({ name: `l${i}`, K: k, N: n, w: randomWeights(k, n, i + 1) });
    }
    const fp32 = buildLinearStack({ layers, activation: 'none' });
    for (const M of [1, 32]) {
      let base = 0;
      for (const v of VARIANTS) {
        const bytes = v.quant ? quantizeOnnx(parseOnnx(fp32), v.quant).bytes : fp32;
        const t = await timeModel(bytes, v.level, M, K, ms, threads);
        if (!v.quant) base = t;
        const row = { shape: `${K}x${N}`, M, variant: v.name, us_per_layer: +((t * 1000) / 8).toFixed(2), vs_fp32: +(t / base).toFixed(2) };
        rows.push(row);
        if (!values.json)
          console.log(`${row.shape.padEnd(8)} M=${String(M).padEnd(3)} ${v.name.padEnd(42)} ${String(row.us_per_layer).padStart(8)} us/layer  x${row.vs_fp32}`);
      }
    }
  }
  if (values.json) console.log(JSON.stringify({ threads, ort: ort.env.versions?.common, rows }));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
