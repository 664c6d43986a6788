// Microbenchmark of the decoder graph's attention formulations (libs/model/src/builder.ts).
//
//   npm run build && node dist/bench/model-graph.js [--threads 1] [--iters 30] [--json]
//
// Config: hidden 256, 4 layers, 8 heads / 4 KV heads (head_dim 32), MLP 768, vocab 512, random
// weights. For S = 1 (AR step) and S = 32 (a block-diffusion window) against a past of P = 64..256:
// median and min ms per forward for each formulation (+fused: q/k/v and gate/up as one MatMul each), and its largest logit difference from 'matmul'
// under a block-causal mask (block 32). 'gqa' (com.microsoft GroupQueryAttention) always applies a
// causal mask inside the op, so for S = 32 its difference shows it cannot express block-causal.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { GRAPH_IO, buildTinyModel, layerIoNames, type AttentionImpl } from '@dllm/model';
import { allRowsDrawn } from '../libs/model/src/testing/run';

const { values } = parseArgs({ options: { threads: { type: 'string', default: '1' }, iters: { type: 'string', default: '30' }, json: { type: 'boolean' } } });
const THREADS = Number(values.threads);
const ITERS = Number(values.iters);
const CFG = {
  vocab_size: 512,
  hidden_size: 256,
  intermediate_size: 768,
  num_layers: 4,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  head_dim: 32,
  max_position_embeddings: 1024,
};
interface Variant {
  label: string;
  attention: AttentionImpl;
  fuseLinears?: boolean;
}
const VARIANTS: Variant[] = [
  { label: 'matmul', attention: 'matmul' },
  { label: 'matmul+fused', attention: 'matmul', fuseLinears: true },
  { label: 'mha', attention: 'mha' },
  { label: 'mha+fused', attention: 'mha', fuseLinears: true },
  { label: 'gqa', attention: 'gqa' },
];
type Impl = string;
const IMPLS: Impl[] = VARIANTS.map((v) => v.label);
const CASES = [
  { S: 1, P: 64 },
  { S: 1, P: 256 },
  { S: 32, P: 64 },
  { S: 32, P: 128 },
  { S: 32, P: 256 },
];
const BLOCK = 32;

function feeds(S: number, P: number): Record<string, ort.Tensor> {
  const T = P + S;
  const mask = new Float32Array(S * T);
  for (let s = 0; s < S; s++) for (let t = 0; t < T; t++) mask[s * T + t] = Math.floor(t / BLOCK) <= Math.floor((P + s) / BLOCK) ? 0 : -1e9;
  const f: Record<string, ort.Tensor> = {
    [GRAPH_IO.inputs.inputIds]: new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: S }, (_, i) => BigInt((i * 37 + 5) % CFG.vocab_size)),
      [1, S],
    ),
    [GRAPH_IO.inputs.positionIds]: new ort.Tensor(
      'int64',
      BigInt64Array.from({ length: S }, (_, i) => BigInt(P + i)),
      [1, S],
    ),
    [GRAPH_IO.inputs.attentionMask]: new ort.Tensor('float32', mask, [1, 1, S, T]),
    ...allRowsDrawn(1, S),
  };
  for (let i = 0; i < CFG.num_layers; i++) {
    const kv = new Float32Array(CFG.num_key_value_heads * P * CFG.head_dim).map((_, j) => Math.sin(j * 0.37 + i) * 0.5);
    f[layerIoNames(i).pastKey] = new ort.Tensor('float32', kv, [1, CFG.num_key_value_heads, P, CFG.head_dim]);
    f[layerIoNames(i).pastValue] = new ort.Tensor(
      'float32',
      kv.map((x) => -x),
      [1, CFG.num_key_value_heads, P, CFG.head_dim],
    );
  }
  return f;
}

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-graph-'));
  const sessions = new Map<Impl, ort.InferenceSession>();
  for (const { label: impl, attention, fuseLinears } of VARIANTS) {
    const dir = path.join(tmp, impl);
    buildTinyModel(dir, { config: CFG, seed: 3, attention, fuseLinears });
    sessions.set(
      impl,
      await ort.InferenceSession.create(path.join(dir, 'model.onnx'), { intraOpNumThreads: THREADS, interOpNumThreads: 1, graphOptimizationLevel: 'all' }),
    );
  }
  const rows: { S: number; P: number; impl: Impl; ms: number; minMs: number; cpuMs: number; maxDiff: number | null; error?: string }[] = [];
  for (const { S, P } of CASES) {
    const f = feeds(S, P);
    const base = (await sessions.get('matmul')!.run(f)).logits.data as Float32Array;
    // Runs are interleaved (one forward of each formulation per round) so that load from other
    // processes on the machine falls on all of them alike.
    const live: Impl[] = [];
    const diffs = new Map<Impl, number>();
    for (const impl of IMPLS) {
      try {
        const out = (await sessions.get(impl)!.run(f)).logits.data as Float32Array;
        let d = 0;
        for (let i = 0; i < out.length; i++) d = Math.max(d, Math.abs(out[i] - base[i]));
        diffs.set(impl, d);
        live.push(impl);
      } catch (e) {
        rows.push({ S, P, impl, ms: NaN, minMs: NaN, cpuMs: NaN, maxDiff: null, error: (e as Error).message.split('\n')[0] });
      }
    }
    const times = new Map<Impl, number[]>(live.map((i) => [i, []]));
    // CPU time of the process per forward: with one ORT thread it is the work done, and it is far
    // less disturbed than wall time when other processes compete for the cores.
    const cpu = new Map<Impl, number[]>(live.map((i) => [i, []]));
    for (let it = 0; it < ITERS + 3; it++) {
      for (const impl of live) {
        const t0 = process.hrtime.bigint();
        const c0 = process.cpuUsage();
        await sessions.get(impl)!.run(f);
        const c = process.cpuUsage(c0);
        if (it >= 3) {
          times.get(impl)!.push(Number(process.hrtime.bigint() - t0) / 1e6);
          cpu.get(impl)!.push((c.user + c.system) / 1000);
        }
      }
    }
    for (const impl of live) {
      const t = times.get(impl)!.sort((a, b) => a - b);
      const c = cpu.get(impl)!.sort((a, b) => a - b);
      rows.push({ S, P, impl, ms: t[Math.floor(t.length / 2)], minMs: t[0], cpuMs: c[Math.floor(c.length / 2)], maxDiff: diffs.get(impl)! });
    }
  }
  const equivalence = await cacheEquivalence(sessions.get('matmul')!);
  for (const s of sessions.values()) await s.release();
  fs.rmSync(tmp, { recursive: true, force: true });
  if (values.json) {
    process.stdout.write(JSON.stringify({ config: CFG, threads: THREADS, iters: ITERS, ort: ort.env.versions, rows, equivalence }) + '\n');
    return;
  }
  console.log(
    `decoder graph, hidden ${CFG.hidden_size}, ${CFG.num_layers} layers, heads ${CFG.num_attention_heads}/${CFG.num_key_value_heads}, threads ${THREADS}, median of ${ITERS}`,
  );
  console.log('   S    P  impl           median ms     min ms  median cpu ms  max|logit diff| vs matmul');
  for (const r of rows) {
    console.log(
      `${String(r.S).padStart(4)} ${String(r.P).padStart(4)}  ${r.impl.padEnd(13)} ${r.error ? `error: ${r.error}` : `${r.ms.toFixed(3).padStart(10)} ${r.minMs.toFixed(3).padStart(10)} ${r.cpuMs.toFixed(3).padStart(14)}  ${r.maxDiff!.toExponential(2)}`}`,
    );
  }
  console.log(
    `cache equivalence (matmul): 96 tokens in one forward vs 3 blocks of 32 with the cache: max |logit diff| ${equivalence.blockVsFull}; causal vs block-causal mask: ${equivalence.causalVsBlockCausal.toFixed(3)}`,
  );
}

/**
 * 96 tokens in one forward under a block-causal mask vs three 32-token blocks against the KV cache
 * built from present_key/present_value; and the same full forward under a causal mask.
 */
async function cacheEquivalence(sess: ort.InferenceSession): Promise<{ blockVsFull: number; causalVsBlockCausal: number }> {
  const N = 96;
  const V = CFG.vocab_size;
  const L = CFG.num_layers;
  const ids = Array.from({ length: N }, (_, i) => (i * 53 + 7) % V);
  const empty = () => Array.from({ length: 2 * L }, () => new ort.Tensor('float32', new Float32Array(0), [1, CFG.num_key_value_heads, 0, CFG.head_dim]));
  const bc = (q: number, k: number) => Math.floor(k / BLOCK) <= Math.floor(q / BLOCK);
  const run = (lo: number, hi: number, past: ort.Tensor[], allow: (q: number, k: number) => boolean) => {
    const S = hi - lo;
    const P = past[0].dims[2];
    const T = P + S;
    const mask = new Float32Array(S * T);
    for (let q = 0; q < S; q++) for (let k = 0; k < T; k++) mask[q * T + k] = allow(lo + q, k) ? 0 : -1e9;
    const f: Record<string, ort.Tensor> = {
      [GRAPH_IO.inputs.inputIds]: new ort.Tensor('int64', BigInt64Array.from(ids.slice(lo, hi).map(BigInt)), [1, S]),
      [GRAPH_IO.inputs.positionIds]: new ort.Tensor(
        'int64',
        BigInt64Array.from({ length: S }, (_, i) => BigInt(lo + i)),
        [1, S],
      ),
      [GRAPH_IO.inputs.attentionMask]: new ort.Tensor('float32', mask, [1, 1, S, T]),
      ...allRowsDrawn(1, S),
    };
    for (let i = 0; i < L; i++) {
      f[layerIoNames(i).pastKey] = past[2 * i];
      f[layerIoNames(i).pastValue] = past[2 * i + 1];
    }
    return sess.run(f);
  };
  const cat = (a: ort.Tensor, b: ort.Tensor) => {
    const [, H, Ta, D] = a.dims;
    const Tb = b.dims[2];
    const o = new Float32Array(H * (Ta + Tb) * D);
    for (let h = 0; h < H; h++) {
      o.set((a.data as Float32Array).subarray(h * Ta * D, (h + 1) * Ta * D), h * (Ta + Tb) * D);
      o.set((b.data as Float32Array).subarray(h * Tb * D, (h + 1) * Tb * D), h * (Ta + Tb) * D + Ta * D);
    }
    return new ort.Tensor('float32', o, [1, H, Ta + Tb, D]);
  };
  const full = (await run(0, N, empty(), bc)).logits.data as Float32Array;
  let past = empty();
  let blockVsFull = 0;
  for (let b = 0; b < N; b += BLOCK) {
    const r = await run(b, b + BLOCK, past, bc);
    const lg = r.logits.data as Float32Array;
    for (let i = 0; i < lg.length; i++) blockVsFull = Math.max(blockVsFull, Math.abs(lg[i] - full[b * V + i]));
    past = past.map((p, j) => {
      const io = layerIoNames(Math.floor(j / 2));
      return cat(p, r[j % 2 ? io.presentValue : io.presentKey]);
    });
  }
  const causal = (await run(0, N, empty(), (q, k) => k <= q)).logits.data as Float32Array;
  let causalVsBlockCausal = 0;
  for (let i = 0; i < full.length; i++) causalVsBlockCausal = Math.max(causalVsBlockCausal, Math.abs(full[i] - causal[i]));
  return { blockVsFull, causalVsBlockCausal };
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
