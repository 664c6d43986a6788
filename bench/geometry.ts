// npm run bench:geometry -- --geometry qwen2.5-0.5b: per-forward cost at a real model's shape.
//
//   npm run bench:geometry -- [--geometry qwen2.5-0.5b] [--dir DIR] [--threads 1] [--rounds 2] [--past 128]
//       [--quantize int8,int4] [--keep] [--json FILE]
//
// 1. Writes a random-weight checkpoint of that shape (bf16 safetensors in ~500 MB shards, Qwen-style
//    config.json, a synthetic character tokenizer.json with the full vocabulary), never held whole
//    in memory.
// 2. Converts it with `convertCheckpoint` (the code behind `dllm-farm convert`): seconds, output
//    bytes, peak RSS.
// 3. In a child process (its own peak RSS), times one forward of the served graph on onnxruntime-node
//    for the shapes the engine runs, as (S new positions, R drawn rows per row: the LM head and the
//    statistics run only on those, format v2 `logit_index`): an AR step (1, 1), a sub-block step
//    (8, 8), a block's first window (32, 8: the first sub-block's masked slots), a commit forward
//    (32, 1: its last output draws the next block's first token), and a window that draws every slot
//    (32, 32: the full-window decoder's worst case, and what this bench timed before 2026-12-01), at
//    batch 1, 4, 8 against --past cached positions: median ms of --rounds after one warm-up, achieved GFLOP/s
//    (bench/gemm-rate.ts `forwardFlops`) and its percentage of the machine's GEMM rate, measured in
//    the same child before and after the forwards (fp32 MatMul on onnxruntime-node, same threads:
//    [S x hidden] x [hidden x intermediate] at S = 1, 8, 32, 256 and 1024^3; median per shape of the
//    two; the fastest shape is the GEMM rate).
// 4. The speed-up over AR those costs give per 32-token block at TPF 2.5, 4 and 6:
//      AR                     32 x c(1,1)
//      full windows           (32/TPF) x c(32,8) + c(32,1)                 (steps, then the commit forward)
//      sub-block cache        c(32,8) + (32/TPF - 1) x c(8,8) + c(32,1)    (first step a window, 8-slot steps after; the default)
//    speed-up = AR cost / policy cost, at the same batch size. (A sub-block step runs 8-9 slots: the
//    active sub-block, and the slot before it whose output draws its first slot; 8 is timed.)
// 5. With --quantize: each scheme through `quantizeModelDir` (the code behind `dllm-farm quantize`, RTN,
//    its defaults: group 32, LM head kept fp32, int8 per channel as DequantizeLinear -> MatMul, int4 as
//    MatMulNBits), reading the fp32 external data by byte ranges: seconds, bytes, peak RSS; then the same
//    forward timings and speed-ups on the quantized graph (FLOPs counted as fp32 MACs: "effective").
// Needs ~1 GB (bf16) + ~2.5 GB (fp32 ONNX) of disk (+ ~0.6-1.2 GB per quantized copy), removed at the end unless --keep.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type * as Ort from 'onnxruntime-node';
import { charTokenizerJson, convertCheckpoint, expectedWeights, writeSafetensors, type Architecture, type TensorToWrite } from '@dllm/model';
import { quantizeModelDir, SCHEMES, type Scheme } from '@dllm/quant';
import {
  combineGemmRates,
  forwardFlops,
  formatGemmRates,
  gflopsPerSecond,
  measureGemmRates,
  median,
  modelGemmShapes,
  referenceRate,
  type GemmRate,
} from './gemm-rate';

/** Shapes of public checkpoints (their config.json), for random-weight stand-ins. */
export const GEOMETRIES: Record<string, { arch: Omit<Architecture, 'type'>; vocabSize: number }> = {
  'qwen2.5-0.5b': {
    arch: {
      hidden_size: 896,
      intermediate_size: 4864,
      num_layers: 24,
      num_attention_heads: 14,
      num_key_value_heads: 2,
      head_dim: 64,
      rms_norm_eps: 1e-6,
      rope_theta: 1_000_000,
      max_position_embeddings: 32768,
      tie_word_embeddings: true,
      attention_bias: true,
    },
    vocabSize: 151_936,
  },
  // a few MB: checks the script end to end in seconds
  smoke: {
    arch: {
      hidden_size: 64,
      intermediate_size: 128,
      num_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      max_position_embeddings: 512,
      tie_word_embeddings: true,
      attention_bias: true,
    },
    vocabSize: 1000,
  },
};

const { values } = parseArgs({
  options: {
    geometry: { type: 'string', default: 'qwen2.5-0.5b' },
    dir: { type: 'string' },
    threads: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '2' },
    past: { type: 'string', default: '128' },
    quantize: { type: 'string', default: '' },
    keep: { type: 'boolean' },
    json: { type: 'string' },
    // internal: the forward-timing child
    stage: { type: 'string' },
    model: { type: 'string' },
  },
});
const threads = Number(values.threads);
const rounds = Number(values.rounds);
const past = Number(values.past);
for (const [k, v] of [
  ['threads', threads],
  ['rounds', rounds],
  ['past', past],
] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer`);
}
const schemes = values.quantize!.split(',').filter(Boolean) as Scheme[];
for (const q of schemes) if (!(SCHEMES as readonly string[]).includes(q)) throw new Error(`--quantize takes a comma list of ${SCHEMES.join(', ')}, got ${q}`);
const geo = GEOMETRIES[values.geometry!];
if (!geo) throw new Error(`--geometry must be one of ${Object.keys(GEOMETRIES).join(', ')}, got ${values.geometry}`);
/** The forward shapes timed: S new positions, R drawn rows (logit_index) per batch row. */
const SHAPES = [
  { S: 1, R: 1, what: 'AR step' },
  { S: 8, R: 8, what: 'sub-block step' },
  { S: 32, R: 8, what: 'window, 8 drawn' },
  { S: 32, R: 1, what: 'commit, 1 drawn' },
  { S: 32, R: 32, what: 'window, all drawn' },
] as const;
const BATCHES = [1, 4, 8];
const peakRssMb = () => process.resourceUsage().maxRSS / 1024;

/** xorshift32 uniform in [-a, a]: std a/sqrt(3). */
function randomFill(out: Float32Array, seed: number, a: number): void {
  let x = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = ((x >>> 0) / 4294967296 - 0.5) * 2 * a;
  }
}

function writeCheckpoint(dir: string): { bytes: number; params: number } {
  fs.mkdirSync(dir, { recursive: true });
  const a = { type: 'qwen2' as const, ...geo.arch };
  const shardMax = 500 * 1024 ** 2;
  const weightMap: Record<string, string> = {};
  let shard: Record<string, TensorToWrite> = {};
  let shardBytes = 0;
  let k = 0;
  let total = 0;
  let params = 0;
  const flush = () => {
    if (!shardBytes) return;
    const f = `model-${String(++k).padStart(5, '0')}.safetensors`;
    writeSafetensors(path.join(dir, f), shard);
    for (const n of Object.keys(shard)) weightMap[n] = f;
    shard = {};
    shardBytes = 0;
  };
  expectedWeights(a, geo.vocabSize).forEach((w, i) => {
    const n = w.shape.reduce((x, y) => x * y, 1);
    const data = new Float32Array(n);
    if (w.name.endsWith('norm.weight')) data.fill(1);
    else randomFill(data, 0x9e3779b9 ^ (i * 7919), w.name.endsWith('bias') ? 0.01 : 0.02 * Math.sqrt(3));
    if (shardBytes + n * 2 > shardMax) flush();
    shard[w.name] = { shape: w.shape, data, dtype: 'BF16' };
    shardBytes += n * 2;
    total += n * 2;
    params += n;
  });
  flush();
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
  const specials = ['<|pad|>', '<|eos|>', '<|mask|>', '<|bos|>'];
  let chars = '';
  for (let cp = 0x21, n = 0; n < geo.vocabSize - specials.length; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    chars += String.fromCodePoint(cp);
    n++;
  }
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(charTokenizerJson(chars, specials)));
  const g = geo.arch;
  const config = {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    vocab_size: geo.vocabSize,
    hidden_size: g.hidden_size,
    intermediate_size: g.intermediate_size,
    num_hidden_layers: g.num_layers,
    num_attention_heads: g.num_attention_heads,
    num_key_value_heads: g.num_key_value_heads,
    head_dim: g.head_dim,
    rms_norm_eps: g.rms_norm_eps,
    rope_theta: g.rope_theta,
    max_position_embeddings: g.max_position_embeddings,
    tie_word_embeddings: g.tie_word_embeddings,
    attention_bias: g.attention_bias,
    hidden_act: 'silu',
    torch_dtype: 'bfloat16',
    bd_size: 32,
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  return { bytes: total, params };
}

/** FLOPs of one forward of B rows, S new positions of which R are drawn (the LM head runs on R), P cached. */
function flopsOf(B: number, S: number, R: number, P: number): number {
  return forwardFlops(geo.arch, geo.vocabSize, { positions: B * S, logitRows: B * R, keys: B * S * (P + S) });
}

interface Cost {
  S: number;
  /** Drawn rows per batch row (logit_index width). */
  R: number;
  batch: number;
  ms: number;
  gflops: number;
  /** gflops / the GEMM rate measured in the same process. */
  fractionOfGemm: number;
}

async function timeForwards(modelDir: string): Promise<{ costs: Cost[]; peakRssMb: number; loadSeconds: number; gemm: GemmRate[]; gemmRate: number }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ort = require('onnxruntime-node') as typeof Ort;
  const gemmBefore = await measureGemmRates(modelGemmShapes(geo.arch), { threads });
  const t0 = performance.now();
  const sessionOptions = { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' as const };
  const session = await ort.InferenceSession.create(path.join(modelDir, 'model.onnx'), sessionOptions);
  const loadSeconds = (performance.now() - t0) / 1000;
  const g = geo.arch;
  const costs: Cost[] = [];
  for (const B of BATCHES) {
    for (const { S, R } of SHAPES) {
      const T = past + S;
      const feeds: Record<string, Ort.Tensor> = {
        input_ids: new ort.Tensor(
          'int64',
          BigInt64Array.from({ length: B * S }, (_, i) => BigInt((i * 7919 + 11) % geo.vocabSize)),
          [B, S],
        ),
        position_ids: new ort.Tensor(
          'int64',
          BigInt64Array.from({ length: B * S }, (_, i) => BigInt(past + (i % S))),
          [B, S],
        ),
        // block-causal within the new positions' block; the cost does not depend on the values
        attention_mask: new ort.Tensor('float32', new Float32Array(B * S * T), [B, 1, S, T]),
        // format v2: the LM head and the statistics run on the R drawn rows only (the last R positions:
        // a window draws its first sub-block, a commit its last output); MASK-like token 0 banned
        logit_index: new ort.Tensor(
          'int64',
          BigInt64Array.from({ length: B * R }, (_, i) => BigInt(S - R + (i % R))),
          [B, R],
        ),
        banned_token_ids: new ort.Tensor('int64', BigInt64Array.from([0n]), [1]),
      };
      const kv = new Float32Array(B * g.num_key_value_heads * past * g.head_dim);
      randomFill(kv, 7, 1);
      for (let i = 0; i < g.num_layers; i++) {
        feeds[`past_key.${i}`] = new ort.Tensor('float32', kv, [B, g.num_key_value_heads, past, g.head_dim]);
        feeds[`past_value.${i}`] = new ort.Tensor('float32', kv, [B, g.num_key_value_heads, past, g.head_dim]);
      }
      await session.run(feeds); // warm-up (arena allocation for this shape)
      const ms: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const t = performance.now();
        await session.run(feeds);
        ms.push(performance.now() - t);
      }
      const med = median(ms);
      costs.push({ S, R, batch: B, ms: med, gflops: gflopsPerSecond(flopsOf(B, S, R, past), med), fractionOfGemm: NaN });
      process.stderr.write(`  batch ${B} S ${S} R ${R}: ${med.toFixed(1)} ms\n`);
    }
  }
  await session.release();
  const gemm = combineGemmRates([gemmBefore, await measureGemmRates(modelGemmShapes(geo.arch), { threads })]);
  const gemmRate = referenceRate(gemm);
  for (const c of costs) c.fractionOfGemm = c.gflops / gemmRate;
  return { costs, peakRssMb: peakRssMb(), loadSeconds, gemm, gemmRate };
}

/** Speed-up over AR per 32-token block at each TPF and batch, from the timed shapes (file header formulas). */
function speedups(costs: readonly Cost[]): { batch: number; tpf: number; window: number; subBlock: number }[] {
  const c = (B: number, S: number, R: number) => {
    const x = costs.find((k) => k.batch === B && k.S === S && k.R === R);
    if (!x) throw new Error(`no timed forward for batch ${B}, S ${S}, R ${R}`);
    return x.ms;
  };
  const out: { batch: number; tpf: number; window: number; subBlock: number }[] = [];
  for (const B of BATCHES) {
    for (const tpf of [2.5, 4, 6]) {
      const ar = 32 * c(B, 1, 1);
      const steps = 32 / tpf;
      const window = c(B, 32, 8);
      const commit = c(B, 32, 1);
      out.push({ batch: B, tpf, window: ar / (steps * window + commit), subBlock: ar / (window + (steps - 1) * c(B, 8, 8) + commit) });
    }
  }
  return out;
}

type ForwardTimings = Awaited<ReturnType<typeof timeForwards>>;

/** Times the forwards of a model directory in a child process (its own peak RSS, nothing else loaded). */
function timeInChild(modelDir: string): ForwardTimings {
  const childArgs = ['--stage', 'forwards', '--model', modelDir, '--geometry', values.geometry!];
  childArgs.push('--threads', String(threads), '--rounds', String(rounds), '--past', String(past));
  const child = execFileSync(process.execPath, [...process.execArgv, __filename, ...childArgs], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(child) as ForwardTimings;
}

function printCosts(label: string, fw: ForwardTimings): void {
  console.log('\n' + formatGemmRates(fw.gemm, threads, 2));
  console.log(`\n${label}: per-forward cost (ms, median), S new positions (R drawn) against ${past} cached; session load ${fw.loadSeconds.toFixed(1)} s,`);
  console.log(`peak RSS of the timing process ${fw.peakRssMb.toFixed(0)} MB; (achieved GFLOP/s, % of the ${fw.gemmRate.toFixed(1)} GFLOP/s GEMM rate):`);
  console.log(['batch', ...SHAPES.map((s) => `S=${s.S} R=${s.R} (${s.what})`)].map((x) => x.padStart(30)).join(''));
  for (const B of BATCHES) {
    const row = SHAPES.map(({ S, R }) => {
      const c = fw.costs.find((x) => x.batch === B && x.S === S && x.R === R)!;
      return `${c.ms.toFixed(1)} (${c.gflops.toFixed(1)} GF/s, ${(c.fractionOfGemm * 100).toFixed(0)}%)`;
    });
    console.log([String(B), ...row].map((x) => x.padStart(30)).join(''));
  }
  console.log(`\n${label}: speed-up over AR from these costs (per 32-token block, same batch; formulas in the file header):`);
  console.log(['batch', 'TPF', 'full windows', 'sub-block cache'].map((x) => x.padStart(16)).join(''));
  for (const s of speedups(fw.costs)) {
    console.log([String(s.batch), String(s.tpf), `${s.window.toFixed(2)}x`, `${s.subBlock.toFixed(2)}x`].map((x) => x.padStart(16)).join(''));
  }
}

async function main() {
  if (values.stage === 'forwards') {
    process.stdout.write(JSON.stringify(await timeForwards(values.model!)));
    return;
  }
  const work = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), `dllm-geometry-${values.geometry}-`));
  const hf = path.join(work, 'hf');
  const served = path.join(work, 'model');
  console.log(`bench:geometry ${values.geometry} (random weights), ${threads} intra-op thread(s), past ${past}, median of ${rounds} rounds`);
  try {
    let t = performance.now();
    const ck = writeCheckpoint(hf);
    const writeSeconds = (performance.now() - t) / 1000;
    const gib = (b: number) => (b / 1024 ** 3).toFixed(2);
    console.log(`checkpoint: ${(ck.params / 1e6).toFixed(1)}M parameters, ${gib(ck.bytes)} GiB bf16, written in ${writeSeconds.toFixed(1)} s`);
    t = performance.now();
    const conv = await convertCheckpoint(hf, served, { kind: 'block-diffusion', blockSize: 32, name: `random-${values.geometry}` });
    const convertSeconds = (performance.now() - t) / 1000;
    const convertRss = peakRssMb();
    const ext = conv.externalData ? ' (external data)' : '';
    console.log(`convert: ${convertSeconds.toFixed(1)} s, ${gib(conv.weightBytes)} GiB fp32 weights${ext}, peak RSS ${convertRss.toFixed(0)} MB`);
    fs.rmSync(hf, { recursive: true, force: true });
    const fw = timeInChild(served);
    printCosts('fp32', fw);
    const sp = speedups(fw.costs);
    const quantized: { scheme: Scheme; seconds: number; bytes: number; peakRssMb: number; version: string; forwards: typeof fw; speedups: typeof sp }[] = [];
    for (const scheme of schemes) {
      t = performance.now();
      const q = await quantizeModelDir(served, path.join(work, `model-${scheme}`), { scheme, method: 'rtn' });
      const seconds = (performance.now() - t) / 1000;
      console.log(
        `\nquantize ${scheme} (rtn): ${seconds.toFixed(1)} s, ${gib(q.sizeIn)} -> ${gib(q.sizeOut)} GiB, peak RSS so far ${peakRssMb().toFixed(0)} MB, version ${q.version}`,
      );
      const qfw = timeInChild(q.outDir);
      printCosts(scheme, qfw);
      quantized.push({ scheme, seconds, bytes: q.sizeOut, peakRssMb: peakRssMb(), version: q.version, forwards: qfw, speedups: speedups(qfw.costs) });
    }
    const out = {
      bench: 'geometry',
      date: new Date().toISOString(),
      geometry: values.geometry,
      architecture: geo.arch,
      vocabSize: geo.vocabSize,
      threads,
      rounds,
      past,
      checkpoint: ck,
      convert: { seconds: convertSeconds, weightBytes: conv.weightBytes, externalData: conv.externalData, peakRssMb: convertRss },
      forwards: fw,
      speedups: sp,
      quantized,
    };
    console.log(JSON.stringify(out));
    if (values.json) fs.writeFileSync(values.json, JSON.stringify(out, null, 2) + '\n');
  } finally {
    if (!values.keep && !values.dir) fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
