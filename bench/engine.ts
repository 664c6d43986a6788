// npm run bench:engine: how fast does each decoding policy run, and how accurately, on our own tasks?
//
//   npm run bench:engine -- [--dllm models/tiny-dllm] [--ar models/tiny-ar] [--n 30] [--families arith,string] [--peer transformers.js|none]
//       [--max-new 96] [--threads 1] [--batches 1,8] [--repeat 3] [--json bench-engine.json] [--quick]
//       [--only 'ar (baseline),fast-dllm-v2 t=0.9'] [--no-sharing] [--compare-hop] [--compare-tick-plan]
//   --compare-tick-plan adds, for the fast-dllm-v2 sb=8 rows (with the sub-block cache and with full
//   windows), the same row on a tiny-dllm engine whose tick planner neither holds nor pads across size
//   classes ('... tick plan off': every size class runs as its own forward every tick, the scheduler
//   before 2026-12-01), in the same round robin (engine.ts tickPlan; tick-plan.ts).
//   --compare-hop adds a row 'ar (hop)': the same tiny-ar engine with the scheduler loop on this
//   thread and session.run on a worker (one message round trip per forward: the arrangement before
//   the engine moved into its own thread), measured in the same round robin as the baseline.
//
// One run, on held-out (test split) problems, same problems for every row:
//   1. per policy and batch size (1 = one request at a time, 8 = eight in flight, batched by the
//      scheduler): accuracy, TPF, forwards, committed tokens/s, and the ratio of tokens/s to the
//      baseline `ar` on tiny-ar at the same batch size, measured in this run. Rows: ar on tiny-ar
//      (baseline), ar on tiny-dllm, fast-dllm-v2 (threshold 0.9) with the model's decode_defaults
//      (tiny-dllm: sub-block 32, the whole block), with sub-block 8 and the sub-block cache (the
//      engine-wide default and the paper's), the same with full windows at every step, with sub-block
//      32; entropy (dParallel rule, tau 0.5) with the model's defaults, sub-block 8 and 32; adablock. A
//      row whose options equal an earlier row's once the model's defaults apply is not run twice. Each
//      row also reports the achieved GFLOP/s of its forwards
//      (bench/gemm-rate.ts `forwardFlops` over the engine's summed forward shapes, divided by the time
//      inside session.run) and its percentage of the machine's GEMM rate (fp32 MatMul on onnxruntime-node,
//      same intra-op threads, the model's widest linear at S = 1, 8, 32, 256 and 1024^3; the fastest
//      shape), measured in a fresh child process before the rounds and after each one, median per shape
//      over those measurements.
//   2. prefix sharing on vs off: a group of 8 sampled answers (temperature 1, 8 seeds) to one long
//      few-shot prompt, submitted together.
//   3. the runner's per-call overhead (worker thread hop) = round trip - time inside session.run.
//   4. paired against ar: fast-dllm-v2 (model defaults, and sub-block 8) and ar on tiny-ar decode the same
//      chunks of 2 x batch problems back to back, order alternating chunk by chunk, every round at every
//      batch size; the median of the rounds' ratios (load drift on a shared CPU hits both alike).
//   5. the peer (bench/peer-transformers.ts): transformers.js on the --ar weights, exported with
//      `dllm-farm export --format transformers.js`, batch 1, one run per round right after `ar`, then once
//      more alternating with `ar` problem by problem (paired: load drift hits both alike); every row's
//      median tokens/s against it and against `ar`, and greedy outputs checked equal to `ar`'s.
// Every row is the round with the median tokens/s of its --repeat rounds (at least 3 for medians).
// Prints tables, then one JSON object (also written to --json FILE when given). Numbers are for this
// machine's CPU with --threads intra-op threads; the problems are never tuned on.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Engine, type DecodeOptions, type TickPlanConfig } from '@dllm/engine';
import { modelDecodeDefaults } from '@dllm/contracts';
import { MANIFEST_FILE, Tokenizer, readManifest } from '@dllm/model';
import { problems, verifyResponse, type Problem } from '@dllm/tasks';
import { combineGemmRates, forwardFlops, formatGemmRates, gflopsPerSecond, measureGemmRatesInChild, median, modelGemmShapes, referenceRate } from './gemm-rate';
import { peerReport, printPeerReport, TransformersJsPeer, type PeerRun } from './peer-transformers';

interface Row {
  model: string;
  policy: string;
  label: string;
  batch: number;
  n: number;
  accuracy: number;
  tokens: number;
  forwards: number;
  tpf: number;
  wallSeconds: number;
  tokensPerSecond: number;
  /** CPU seconds of the whole process (every thread: caller, engine/ORT threads) during the run. */
  cpuSeconds: number;
  /** tokens / cpuSeconds: the work per token, much less sensitive than wall time to a shared, overloaded CPU. */
  tokensPerCpuSecond: number;
  ratioToAr: number | null;
  meanBatchRows: number;
  /** Row-ticks spent waiting for a fuller forward (phase alignment), per forward. */
  heldPerForward: number;
  /** Fraction of the positions computed that were padding (EngineStats.work). */
  paddingFraction: number;
  /** forwardFlops over the run's forwards (padding included), / forwards. */
  flopsPerForward: number;
  /** Seconds inside session.run during the run. */
  runSeconds: number;
  /** Achieved GFLOP/s of the forwards: FLOPs / runSeconds. */
  gflops: number;
  /** gflops / the machine's GEMM rate (1024^3 fp32 MatMul) measured at the start of this run. */
  fractionOfGemm: number;
}

const { values } = parseArgs({
  options: {
    dllm: { type: 'string', default: 'models/tiny-dllm' },
    ar: { type: 'string', default: 'models/tiny-ar' },
    n: { type: 'string', default: '30' },
    families: { type: 'string', default: 'arith,string' },
    'max-new': { type: 'string', default: '96' },
    threads: { type: 'string', default: '1' },
    batches: { type: 'string', default: '1,8' },
    json: { type: 'string' },
    quick: { type: 'boolean' },
    repeat: { type: 'string', default: '3' },
    // the peer at batch 1 on the --ar weights (bench/peer-transformers.ts); 'none' skips it
    peer: { type: 'string', default: 'transformers.js' },
    /** comma-separated row labels to run (default: all); the ar baseline always runs (the ratios need it) */
    only: { type: 'string' },
    /** skip the prefix-sharing section */
    'no-sharing': { type: 'boolean' },
    'compare-hop': { type: 'boolean' },
    'compare-tick-plan': { type: 'boolean' },
  },
});
const repeat = Number(values.repeat);

const n = values.quick ? 8 : Number(values.n);
const maxNew = Number(values['max-new']);
const threads = Number(values.threads);
const fams = values.families!.split(',').filter(Boolean);
const batches = values.batches!.split(',').map(Number);
for (const [k, v] of [
  ['n', n],
  ['max-new', maxNew],
  ['threads', threads],
] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer`);
}
for (const d of [values.dllm!, values.ar!]) {
  if (!fs.existsSync(path.join(d, MANIFEST_FILE))) {
    console.error(`bench:engine: model directory ${d} not found (run from the repository root, or pass --dllm/--ar)`);
    process.exit(2);
  }
}

const allItems: Problem[] = fams.flatMap((f) => problems(f, { split: 'test', seed: 0, n }));
const items = allItems;

const flopModels = new Map<Engine, { arch: ReturnType<typeof readManifest>['architecture']; vocab: number }>();

async function evalRun(
  engine: Engine,
  options: Partial<DecodeOptions>,
  batch: number,
  items: Problem[] = allItems,
  collect?: { tokenIds: number[] }[],
): Promise<Omit<Row, 'model' | 'policy' | 'label' | 'batch' | 'ratioToAr'>> {
  const before = engine.stats();
  const fm = flopModels.get(engine)!;
  const cpu0 = process.cpuUsage();
  let next = 0;
  let correct = 0;
  let tokens = 0;
  let forwards = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < items.length) {
      const idx = next++;
      const p = items[idx];
      const r = await engine.generate({ prompt: p.prompt, options: { maxNewTokens: maxNew, ...options } });
      if (collect) collect[idx] = { tokenIds: r.tokenIds };
      if (verifyResponse(p, r.text).correct) correct++;
      tokens += r.usage.completionTokens;
      forwards += r.stats.forwards;
    }
  };
  await Promise.all(Array.from({ length: batch }, worker));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const after = engine.stats();
  const engineForwards = after.forwards - before.forwards;
  const work = {
    positions: after.work.positions - before.work.positions,
    logitRows: after.work.logitRows - before.work.logitRows,
    keys: after.work.keys - before.work.keys,
  };
  const flops = forwardFlops(fm.arch, fm.vocab, work);
  const runMs = after.runner.runMs - before.runner.runMs;
  const gflops = runMs > 0 ? gflopsPerSecond(flops, runMs) : 0;
  return {
    n: items.length,
    accuracy: correct / items.length,
    tokens,
    forwards,
    tpf: tokens / forwards,
    wallSeconds: wall,
    tokensPerSecond: tokens / wall,
    cpuSeconds,
    tokensPerCpuSecond: tokens / cpuSeconds,
    meanBatchRows: engineForwards ? (after.rows - before.rows) / engineForwards : 0,
    heldPerForward: engineForwards ? (after.heldRows - before.heldRows) / engineForwards : 0,
    paddingFraction: work.positions ? 1 - (after.work.rowPositions - before.work.rowPositions) / work.positions : 0,
    flopsPerForward: engineForwards ? flops / engineForwards : 0,
    runSeconds: runMs / 1000,
    gflops,
    fractionOfGemm: NaN, // set once the GEMM rate over all rounds is known
  };
}

/**
 * Paired measurement of a policy against the `ar` baseline at one batch size: the problems in chunks of
 * 2 x batch, each chunk decoded by both engines back to back (`batch` requests in flight), the order
 * alternating chunk by chunk, so load drift on a shared CPU hits both sides alike. Returns each side's
 * committed tokens over its summed wall seconds. (A chunk drains before the next starts, so both sides
 * run slightly below their continuous-batching tokens/s; the ratio is what this is for.)
 */
async function pairedVsAr(
  ar: Engine,
  dllm: Engine,
  options: Partial<DecodeOptions>,
  batch: number,
): Promise<{ arTokensPerSecond: number; tokensPerSecond: number; ratio: number }> {
  const chunk = 2 * batch;
  const side = { ar: { tokens: 0, seconds: 0 }, dllm: { tokens: 0, seconds: 0 } };
  const runChunk = async (engine: Engine, opts: Partial<DecodeOptions>, items: Problem[], acc: { tokens: number; seconds: number }) => {
    const r = await evalRun(engine, opts, batch, items);
    acc.tokens += r.tokens;
    acc.seconds += r.wallSeconds;
  };
  for (let i = 0, k = 0; i < allItems.length; i += chunk, k++) {
    const items = allItems.slice(i, i + chunk);
    const a = () => runChunk(ar, { policy: 'ar' }, items, side.ar);
    const d = () => runChunk(dllm, options, items, side.dllm);
    if (k % 2 === 0) {
      await a();
      await d();
    } else {
      await d();
      await a();
    }
  }
  const arTps = side.ar.tokens / side.ar.seconds;
  const tps = side.dllm.tokens / side.dllm.seconds;
  return { arTokensPerSecond: arTps, tokensPerSecond: tps, ratio: tps / arTps };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const f2 = (x: number) => x.toFixed(2);
function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  return cells
    .map((r, j) => r.map((c, i) => (i < 2 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ') + (j === 0 ? `\n${w.map((x) => '-'.repeat(x)).join('  ')}` : ''))
    .join('\n');
}

async function main() {
  const mk = (modelDir: string, extra: { maxBatchSize?: number; prefixSharing?: boolean; thread?: 'worker' | 'hop'; tickPlan?: TickPlanConfig } = {}) =>
    Engine.create({ modelDir, intraOpThreads: threads, maxBatchSize: 8, ...extra });
  // The machine's GEMM rate: measured now and after every round (engines idle meanwhile), so its
  // median sees the same load drift as the rows' medians; in a child process, away from this one's threads.
  const dllmManifest = readManifest(values.dllm!);
  const gemmShapes = modelGemmShapes(dllmManifest.architecture);
  const gemmRuns = [measureGemmRatesInChild(gemmShapes, threads)];
  const dllm = await mk(values.dllm!);
  const ar = await mk(values.ar!);
  const arManifest = readManifest(values.ar!);
  flopModels.set(dllm, { arch: dllmManifest.architecture, vocab: dllmManifest.vocab_size });
  flopModels.set(ar, { arch: arManifest.architecture, vocab: arManifest.vocab_size });
  if (values.peer !== 'none' && values.peer !== 'transformers.js') throw new Error(`--peer must be transformers.js or none, got ${values.peer}`);
  const peer = values.peer === 'none' ? null : await TransformersJsPeer.create(values.ar!, threads);
  const peerRounds: PeerRun[] = [];
  const peerPaired: { engineTokensPerSecond: number; peerTokensPerSecond: number; identical: number; n: number }[] = [];
  const allRounds = new Map<string, number[]>();
  const baselineOutputs: { tokenIds: number[] }[] = [];
  console.log(
    `bench:engine  ${dllm.model.name}@${dllm.model.version} (decode_defaults ${JSON.stringify(dllmManifest.decode_defaults ?? {})}) vs ${ar.model.name}@${ar.model.version}; ${items.length} held-out problems (${fams.join(', ')}, ${n} each), maxNewTokens ${maxNew}, intra-op threads ${threads}, node ${process.version}, ${repeat} rounds (rows: the median round)\n`,
  );

  const declared: Array<{ engine: Engine; model: string; label: string; options: Partial<DecodeOptions> }> = [
    { engine: ar, model: ar.model.name, label: 'ar (baseline)', options: { policy: 'ar' } },
    { engine: dllm, model: dllm.model.name, label: 'ar', options: { policy: 'ar' } },
    // The model's own decode_defaults apply under each row's options (tiny-dllm: whole-block sub-blocks);
    // the sb= rows set the sub-block explicitly. A row that resolves to the same options as an earlier
    // one is dropped below.
    { engine: dllm, model: dllm.model.name, label: 'fast-dllm-v2 t=0.9', options: { policy: 'fast-dllm-v2', threshold: 0.9 } },
    { engine: dllm, model: dllm.model.name, label: 'fast-dllm-v2 t=0.9 sb=8', options: { policy: 'fast-dllm-v2', threshold: 0.9, subBlockSize: 8 } },
    {
      engine: dllm,
      model: dllm.model.name,
      label: 'fast-dllm-v2 t=0.9 sb=8 full windows',
      options: { policy: 'fast-dllm-v2', threshold: 0.9, subBlockSize: 8, subBlockCache: false },
    },
    {
      engine: dllm,
      model: dllm.model.name,
      label: 'fast-dllm-v2 t=0.9 sb=32',
      options: { policy: 'fast-dllm-v2', threshold: 0.9, subBlockSize: 32 },
    },
    { engine: dllm, model: dllm.model.name, label: 'entropy tau=0.5', options: { policy: 'entropy', entropyThreshold: 0.5 } },
    { engine: dllm, model: dllm.model.name, label: 'entropy tau=0.5 sb=8', options: { policy: 'entropy', entropyThreshold: 0.5, subBlockSize: 8 } },
    {
      engine: dllm,
      model: dllm.model.name,
      label: 'entropy tau=0.5 sb=32',
      options: { policy: 'entropy', entropyThreshold: 0.5, subBlockSize: 32 },
    },
    { engine: dllm, model: dllm.model.name, label: 'adablock t=0.9 d=0.3', options: { policy: 'adablock', threshold: 0.9, delimiterThreshold: 0.3 } },
  ];
  const dllmDefaults = modelDecodeDefaults(dllmManifest.decode_defaults, dllmManifest.kind);
  const effective = (c: (typeof declared)[number]) => {
    const o: Record<string, unknown> = c.engine === dllm ? { ...dllmDefaults, ...c.options } : { ...c.options };
    return `${c.model} ${JSON.stringify(
      Object.keys(o)
        .sort()
        .map((k) => [k, o[k]]),
    )}`;
  };
  const seenOptions = new Map<string, string>();
  /** A dropped row's label -> the row that runs its options. */
  const aliasOf = new Map<string, string>();
  const allConfigs = declared.filter((c) => {
    const key = effective(c);
    const first = seenOptions.get(key);
    if (first === undefined) {
      seenOptions.set(key, c.label);
      return true;
    }
    console.log(`(row '${c.label}' is '${first}' with this model's decode_defaults: not run twice)`);
    aliasOf.set(c.label, first);
    return false;
  });
  const rowLabel = (label: string) => aliasOf.get(label) ?? label;
  const hop = values['compare-hop'] ? await mk(values.ar!, { thread: 'hop' }) : null;
  if (hop) {
    flopModels.set(hop, flopModels.get(ar)!);
    allConfigs.splice(1, 0, { engine: hop, model: ar.model.name, label: 'ar (hop)', options: { policy: 'ar' } });
  }
  const untimed = values['compare-tick-plan'] ? await mk(values.dllm!, { tickPlan: { maxHoldTicks: 0, padding: 'never' } }) : null;
  if (untimed) {
    flopModels.set(untimed, flopModels.get(dllm)!);
    for (const label of new Set(['fast-dllm-v2 t=0.9 sb=8', 'fast-dllm-v2 t=0.9 sb=8 full windows'].map(rowLabel))) {
      const at = allConfigs.findIndex((c) => c.label === label);
      allConfigs.splice(at + 1, 0, { ...allConfigs[at], engine: untimed, label: `${label} tick plan off` });
    }
  }
  const configs = allConfigs.filter(
    (c) =>
      !values.only ||
      c.label === 'ar (baseline)' ||
      c.label === 'ar (hop)' ||
      values.only
        .split(',')
        .map(rowLabel)
        .includes(c.label.replace(/ tick plan off$/, '')),
  );
  // Warm-up: every configuration once at every batch size on a few problems (first-run allocations of
  // each tensor shape in ORT's arena), so no row pays for being first.
  for (const batch of batches) for (const c of configs) await evalRun(c.engine, c.options, batch, allItems.slice(0, Math.min(allItems.length, batch * 2)));
  if (peer) await peer.run(allItems.slice(0, 2), maxNew, () => false);
  const sharingSection = !values['no-sharing'];

  // Round robin: every configuration runs once per round, `repeat` rounds, and each row keeps its
  // median round (by tokens/s). V8's JIT and onnxruntime's arena keep warming up over the first runs and
  // the CPU is shared, so rounds (not back-to-back repeats) give every configuration the same conditions.
  const runs = new Map<string, Omit<Row, 'model' | 'policy' | 'label' | 'batch' | 'ratioToAr'>[]>();
  // Rows also measured paired against ar (pairedVsAr), every round at every batch size.
  const PAIRED_LABELS = [...new Set(['fast-dllm-v2 t=0.9', 'fast-dllm-v2 t=0.9 sb=8'].map(rowLabel))];
  const pairedRounds = new Map<string, number[]>();
  for (let round = 0; round < repeat; round++) {
    for (const batch of batches) {
      for (const c of configs) {
        const r = await evalRun(c.engine, c.options, batch, allItems, c.label === 'ar (baseline)' && batch === 1 ? baselineOutputs : undefined);
        const key = `${c.label}|${batch}`;
        allRounds.set(key, [...(allRounds.get(key) ?? []), r.tokensPerSecond]);
        runs.set(key, [...(runs.get(key) ?? []), r]);
        process.stderr.write(
          `  round ${round + 1}/${repeat}: ${c.label} batch ${batch}: ${r.tokensPerSecond.toFixed(0)} tokens/s, ${r.tokensPerCpuSecond.toFixed(0)} tokens/CPU-s, ${r.gflops.toFixed(1)} GFLOP/s\n`,
        );
        // The peer runs right after the baseline it is compared with (a shared CPU's load drifts).
        if (peer && c.label === 'ar (baseline)' && batch === batches[0]) {
          const verify = (i: number, text: string) => verifyResponse(allItems[i], text).correct;
          peerRounds.push(await peer.run(allItems, maxNew, verify));
          const peerTps = peerRounds[round].tokensPerSecond;
          process.stderr.write(`  round ${round + 1}/${repeat}: transformers.js (${values.ar}) batch 1: ${peerTps.toFixed(0)} tokens/s\n`);
          const pr = await peer.paired(allItems, maxNew, (prompt) => ar.generate({ prompt, options: { maxNewTokens: maxNew, policy: 'ar' } }), verify);
          const [eTps, pTps] = [pr.engineTokensPerSecond, pr.peer.tokensPerSecond];
          peerPaired.push({ engineTokensPerSecond: eTps, peerTokensPerSecond: pTps, identical: pr.identical, n: allItems.length });
          process.stderr.write(`  round ${round + 1}/${repeat}: paired ar ${eTps.toFixed(0)} vs transformers.js ${pTps.toFixed(0)} tokens/s\n`);
        }
      }
    }
    for (const batch of batches) {
      for (const c of configs.filter((x) => PAIRED_LABELS.includes(x.label))) {
        const pr = await pairedVsAr(ar, c.engine, c.options, batch);
        const key = `${c.label}|${batch}`;
        pairedRounds.set(key, [...(pairedRounds.get(key) ?? []), pr.ratio]);
        process.stderr.write(
          `  round ${round + 1}/${repeat}: paired ${c.label} batch ${batch}: ${pr.tokensPerSecond.toFixed(0)} vs ar ${pr.arTokensPerSecond.toFixed(0)} tokens/s (${pr.ratio.toFixed(2)}x)\n`,
        );
      }
    }
    gemmRuns.push(measureGemmRatesInChild(gemmShapes, threads));
    process.stderr.write(`  round ${round + 1}/${repeat}: GEMM rate ${referenceRate(gemmRuns[gemmRuns.length - 1]).toFixed(1)} GFLOP/s\n`);
  }
  const gemm = combineGemmRates(gemmRuns);
  const gemmRate = referenceRate(gemm);
  console.log(formatGemmRates(gemm, threads, gemmRuns.length) + '\n');
  // The median round of each row (the lower middle one for an even count).
  const medianRun = (key: string) => {
    const rs = [...runs.get(key)!].sort((a, b) => a.tokensPerSecond - b.tokensPerSecond);
    return rs[(rs.length - 1) >> 1];
  };
  const rows: Row[] = [];
  for (const batch of batches) {
    const base = medianRun(`ar (baseline)|${batch}`).tokensPerSecond;
    for (const c of configs) {
      const r = { ...medianRun(`${c.label}|${batch}`) };
      r.fractionOfGemm = r.gflops / gemmRate;
      rows.push({ model: c.model, policy: c.options.policy!, label: c.label, batch, ...r, ratioToAr: r.tokensPerSecond / base });
    }
  }
  const engineRounds = batches.flatMap((batch) =>
    configs.map((c) => ({ label: c.label, model: c.model, batch, tokensPerSecond: allRounds.get(`${c.label}|${batch}`)! })),
  );
  const peerRuns = peer ? { version: peer.version, rounds: peerRounds, paired: peerPaired } : null;
  const peerOut = peerRuns ? peerReport(peerRuns, engineRounds, 'ar (baseline)', batches.includes(1) ? baselineOutputs : undefined) : null;
  const xTjs = (r: Row) => {
    const p = peerOut?.rows.find((x) => x.label === r.label && x.batch === r.batch);
    return p ? f2(r.tokensPerSecond / peerOut!.peerTokensPerSecond) : '-';
  };
  console.log('Policies (median round; tokens/s = committed tokens / wall seconds; x ar = tokens/s / ar-on-tiny-ar at the same batch; x tjs = tokens/s /');
  console.log(`the transformers.js peer at batch 1, median; GFLOP/s = forwardFlops / seconds inside session.run; % GEMM = of ${gemmRate.toFixed(1)} GFLOP/s):`);
  console.log(
    table(
      [
        'model',
        'policy',
        'batch',
        'accuracy',
        'TPF',
        'forwards',
        'tokens/s',
        'x ar',
        'x tjs',
        'tokens/CPU-s',
        'rows/fwd',
        'held/fwd',
        'pad',
        'MFLOP/fwd',
        'GFLOP/s',
        '% GEMM',
      ],
      rows.map((r) => [
        r.model,
        r.label,
        r.batch,
        pct(r.accuracy),
        f2(r.tpf),
        r.forwards,
        r.tokensPerSecond.toFixed(1),
        r.ratioToAr === null ? '-' : f2(r.ratioToAr),
        xTjs(r),
        r.tokensPerCpuSecond.toFixed(1),
        f2(r.meanBatchRows),
        f2(r.heldPerForward),
        pct(r.paddingFraction),
        (r.flopsPerForward / 1e6).toFixed(2),
        r.gflops.toFixed(2),
        pct(r.fractionOfGemm),
      ]),
    ),
  );
  if (peerOut) printPeerReport(peerOut);
  const by = (label: string, batch: number) => rows.find((r) => r.label === label && r.batch === batch);
  const batchScaling: Record<string, number> = {};
  if (batches.includes(1) && batches.includes(8)) {
    for (const c of configs) batchScaling[c.label] = by(c.label, 8)!.tokensPerSecond / by(c.label, 1)!.tokensPerSecond;
    console.log('\nBatch 8 vs batch 1 (tokens/s ratio):');
    console.log(
      table(
        ['policy', 'x'],
        Object.entries(batchScaling).map(([k, v]) => [k, f2(v)]),
      ),
    );
  }

  // Prefix sharing: 8 samples of one long few-shot prompt, as many shots as the model's positions
  // leave room for after maxNew generated tokens (the engine refuses prompts that cannot fit).
  const tok = Tokenizer.fromFile(path.join(values.dllm!, 'tokenizer.json'));
  const manifest = readManifest(values.dllm!);
  const room = manifest.architecture.max_position_embeddings - maxNew - 2;
  let longPrompt = items[0].prompt;
  for (const p of problems(fams[0], { split: 'train', seed: 1, n: 6 })) {
    const next = `${p.prompt} ${p.solution}\n${longPrompt}`;
    if (tok.encode(next).length > room) break;
    longPrompt = next;
  }
  const group = async (sharing: boolean) => {
    const e = await mk(values.dllm!, { prefixSharing: sharing });
    await e.generate({ prompt: items[1].prompt, options: { maxNewTokens: 8 } }); // warm-up on another prompt
    const t0 = performance.now();
    const res = await Promise.all(
      Array.from({ length: 8 }, (_, i) => e.generate({ prompt: longPrompt, options: { maxNewTokens: maxNew, temperature: 1, seed: 100 + i } })),
    );
    const wall = (performance.now() - t0) / 1000;
    const st = e.stats();
    await e.close();
    const tokens = res.reduce((s, r) => s + r.usage.completionTokens, 0);
    return {
      sharing,
      promptTokens: res[0].usage.promptTokens,
      tokens,
      wallSeconds: wall,
      tokensPerSecond: tokens / wall,
      prefillTokensComputed: res.reduce((s, r) => s + r.stats.prefillTokens, 0),
      prefixHitTokens: res.reduce((s, r) => s + r.stats.prefixCacheHitTokens, 0),
      poolHits: st.pool.hits,
      poolMisses: st.pool.misses,
    };
  };
  // Interleaved rounds, fastest of each kept (same reasoning as above).
  let off = sharingSection ? await group(false) : null;
  let on = sharingSection ? await group(true) : null;
  for (let k = 1; k < repeat && off && on; k++) {
    const o = await group(false);
    if (o.wallSeconds < off.wallSeconds) off = o;
    const n2 = await group(true);
    if (n2.wallSeconds < on.wallSeconds) on = n2;
  }
  const sharingRatio = on && off ? on.tokensPerSecond / off.tokensPerSecond : null;
  if (on && off) {
    console.log(`\nPrefix sharing, group of 8 samples (temperature 1) of one ${on.promptTokens}-token prompt:`);
    console.log(
      table(
        ['sharing', 'x', 'tokens/s', 'wall s', 'prefill computed', 'prefix hits (tokens)'],
        [off, on].map((g) => [g.sharing ? 'on' : 'off', '', g.tokensPerSecond.toFixed(1), f2(g.wallSeconds), g.prefillTokensComputed, g.prefixHitTokens]),
      ),
    );
    console.log(`  on/off tokens/s: ${f2(sharingRatio!)}x`);
  }

  const rs = dllm.stats().runner;
  const overheadMs = rs.calls ? (rs.roundTripMs - rs.runMs) / rs.calls : 0;
  console.log(
    `\nRunner: ${rs.calls} calls, mean ${(rs.runMs / Math.max(1, rs.calls)).toFixed(2)} ms inside session.run, ${overheadMs.toFixed(3)} ms per call for the worker hop (transfer in, outputs back).`,
  );

  const fast1 = by('fast-dllm-v2 t=0.9', 1);
  const ar1 = by('ar (baseline)', 1);
  // Paired against ar (pairedVsAr): the median over rounds of each round's ratio.
  const paired = [...pairedRounds].map(([key, ratios]) => {
    const [label, batch] = key.split('|');
    return { label, batch: Number(batch), ratio: median(ratios), rounds: ratios };
  });
  if (paired.length) {
    console.log("\nPaired against ar on tiny-ar (chunks of 2 x batch problems, both engines back to back, order alternating; median of the rounds' ratios):");
    console.log(
      table(
        ['policy', 'batch', 'x ar paired', 'rounds'],
        paired.map((p) => [p.label, p.batch, f2(p.ratio), p.rounds.map(f2).join(' ')]),
      ),
    );
  }
  const summary = {
    fastDllmV2VsAr:
      fast1 && ar1
        ? {
            tokensPerSecondRatio: fast1.tokensPerSecond / ar1.tokensPerSecond,
            accuracyDeltaPoints: (fast1.accuracy - ar1.accuracy) * 100,
            target: '>= 2.5x, accuracy within 1 point',
          }
        : null,
    batch8VsBatch1: batchScaling,
    prefixSharing: { ratio: sharingRatio, target: '>= 1.3x' },
    // issue 11's targets, by this run's medians (the peer runs at batch 1 only)
    targets: {
      arVsPeerBatch1: peerOut
        ? {
            alone: peerOut.rows.find((x) => x.label === 'ar (baseline)' && x.batch === 1)?.ratioToPeerPerRound,
            paired: peerOut.paired?.ratio,
            target: '>= 1.0x',
          }
        : null,
      vsPeerBatch1: peerOut ? Object.fromEntries(peerOut.rows.filter((x) => x.batch === 1).map((x) => [x.label, x.ratioToPeer])) : null,
      vsPeerTarget: 'fast-dllm-v2 >= 2.5x',
      vsArBatch8: Object.fromEntries(rows.filter((r) => r.batch === 8).map((r) => [r.label, r.ratioToAr])),
      vsArPaired: paired,
      vsArBatch8Target: 'fast-dllm-v2 >= 1.2x',
    },
    subBlockCache: batches.map((b) => ({
      batch: b,
      on: by(rowLabel('fast-dllm-v2 t=0.9 sb=8'), b)?.tokensPerSecond,
      off: by(rowLabel('fast-dllm-v2 t=0.9 sb=8 full windows'), b)?.tokensPerSecond,
    })),
  };
  console.log('\nSummary:', JSON.stringify(summary));
  const out = {
    bench: 'engine',
    date: new Date().toISOString(),
    node: process.version,
    threads,
    repeat,
    models: { dllm: `${dllm.model.name}@${dllm.model.version}`, ar: `${ar.model.name}@${ar.model.version}` },
    problems: { families: fams, perFamily: n, split: 'test', seed: 0 },
    maxNewTokens: maxNew,
    gemm: { referenceGflops: gemmRate, rates: gemm, measurements: gemmRuns },
    rows,
    paired,
    prefixSharing: { off, on, ratio: sharingRatio },
    runner: { ...rs, overheadMsPerCall: overheadMs },
    summary,
    peer: peerOut,
  };
  console.log(JSON.stringify(out));
  if (values.json) fs.writeFileSync(values.json, JSON.stringify(out, null, 2) + '\n');
  await dllm.close();
  await ar.close();
  await peer?.close();
  await hop?.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
