// The peer for bench:engine: @huggingface/transformers (transformers.js, on the same onnxruntime-node)
// running our AR model, exported with `dllm-farm export --format transformers.js`, offline.
//
// It is what a Node user would pick to run an ONNX decoder: greedy generate() with its own KV cache
// handling, tokenizer and logits processors, at batch 1 (one request at a time). The exported graph is
// the served one byte for byte, so the comparison is of everything around the forward.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exportTransformersJs } from '@dllm/quant';
import { median } from './gemm-rate';

/* eslint-disable @typescript-eslint/no-explicit-any -- transformers.js ships loose types for generate() */

export interface PeerOutput {
  text: string;
  /** generated ids, the stop token included when there was one (as the engine counts them). */
  tokenIds: number[];
}

export interface PeerRun {
  n: number;
  /** problems whose answer `verify` accepts. */
  correct: number;
  tokens: number;
  wallSeconds: number;
  tokensPerSecond: number;
  outputs: PeerOutput[];
}

/** transformers.js on an exported copy of an AR model directory, offline, `threads` intra-op threads. */
export class TransformersJsPeer {
  private constructor(
    private readonly tjs: any,
    private readonly model: any,
    private readonly tokenizer: any,
    private readonly tmp: string,
    readonly version: string,
  ) {}

  /** Exports `arModelDir` into a temporary folder and loads it with remote models disabled. */
  static async create(arModelDir: string, threads: number): Promise<TransformersJsPeer> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const tjs = require('@huggingface/transformers');
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-bench-tjs-'));
    try {
      exportTransformersJs(arModelDir, path.join(tmp, 'model'));
      tjs.env.allowRemoteModels = false;
      tjs.env.allowLocalModels = true;
      tjs.env.localModelPath = tmp + path.sep;
      const opts = { local_files_only: true };
      const tokenizer = await tjs.AutoTokenizer.from_pretrained('model', opts);
      const sessionOptions = { intraOpNumThreads: threads, interOpNumThreads: 1 };
      const model = await tjs.AutoModelForCausalLM.from_pretrained('model', { ...opts, dtype: 'fp32', device: 'cpu', session_options: sessionOptions });
      return new TransformersJsPeer(tjs, model, tokenizer, tmp, tjs.env.version as string);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /** Greedy decoding of `prompt` (no special tokens added), at most `maxNew` tokens. */
  async generate(prompt: string, maxNew: number): Promise<PeerOutput> {
    const ids: number[] = this.tokenizer.encode(prompt, { add_special_tokens: false });
    const input = new this.tjs.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]);
    const out = await this.model.generate({ input_ids: input, attention_mask: this.tjs.ones_like(input), max_new_tokens: maxNew, do_sample: false });
    const all = (out.tolist() as bigint[][])[0].map(Number);
    const gen = all.slice(ids.length);
    return { text: this.tokenizer.decode(gen, { skip_special_tokens: true }), tokenIds: gen };
  }

  /** The problems one at a time (batch 1): tokens/s = generated tokens / wall seconds. */
  async run(items: { prompt: string }[], maxNew: number, verify: (i: number, text: string) => boolean): Promise<PeerRun> {
    let tokens = 0;
    let correct = 0;
    const outputs: PeerOutput[] = [];
    const t0 = performance.now();
    for (let i = 0; i < items.length; i++) {
      const o = await this.generate(items[i].prompt, maxNew);
      outputs.push(o);
      tokens += o.tokenIds.length;
      if (verify(i, o.text)) correct++;
    }
    const wallSeconds = (performance.now() - t0) / 1000;
    return { n: items.length, correct, tokens, wallSeconds, tokensPerSecond: tokens / wallSeconds, outputs };
  }

  /**
   * Side by side at the finest grain: for each problem the engine's `ar` generation, then the peer's,
   * each timed alone; tokens/s of each side = its tokens / its summed seconds. Load drift on a shared
   * machine hits both sides alike. Also returns the peer's outputs and whether each equals the engine's.
   */
  async paired(
    items: { prompt: string }[],
    maxNew: number,
    engineGenerate: (prompt: string) => Promise<{ tokenIds: number[] }>,
    verify: (i: number, text: string) => boolean,
  ): Promise<{ peer: PeerRun; engineTokensPerSecond: number; identical: number }> {
    let pTok = 0;
    let pMs = 0;
    let eTok = 0;
    let eMs = 0;
    let correct = 0;
    let identical = 0;
    const outputs: PeerOutput[] = [];
    for (let i = 0; i < items.length; i++) {
      let t = performance.now();
      const e = await engineGenerate(items[i].prompt);
      eMs += performance.now() - t;
      t = performance.now();
      const o = await this.generate(items[i].prompt, maxNew);
      pMs += performance.now() - t;
      eTok += e.tokenIds.length;
      pTok += o.tokenIds.length;
      outputs.push(o);
      if (verify(i, o.text)) correct++;
      if (o.tokenIds.join(',') === e.tokenIds.join(',')) identical++;
    }
    const peer = { n: items.length, correct, tokens: pTok, wallSeconds: pMs / 1000, tokensPerSecond: pTok / (pMs / 1000), outputs };
    return { peer, engineTokensPerSecond: eTok / (eMs / 1000), identical };
  }

  async close(): Promise<void> {
    await this.model.dispose();
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** One engine configuration's rounds, as bench/engine.ts measured them. */
export interface EngineRounds {
  label: string;
  model: string;
  batch: number;
  /** tokens/s of each round, in round order (round r ran next to the peer's round r). */
  tokensPerSecond: number[];
}

export interface PeerReport {
  peer: string;
  rounds: number;
  /** medians over rounds. */
  peerTokensPerSecond: number;
  peerAccuracy: number;
  /** problems whose greedy output (token ids) equals the engine's `ar` on the same AR model. */
  identicalOutputs: { same: number; of: number };
  /** engine `ar` and the peer alternating problem by problem (medians over rounds; identical = fewest of any round). */
  paired?: { engineTokensPerSecond: number; peerTokensPerSecond: number; ratio: number; identical: number; of: number };
  rows: { label: string; model: string; batch: number; tokensPerSecond: number; ratioToAr: number; ratioToPeer: number; ratioToPeerPerRound: number }[];
}

/**
 * Every engine row against the peer and against the engine's `ar` baseline, by medians of rounds:
 * tokens/s median, ratio of medians, and the median of per-round ratios (each round's row over the
 * peer's run of the same round, which cancels slow phases of a shared machine). The peer runs at
 * batch 1 only; rows at larger batches are compared with it as it is (one request at a time).
 */
export function peerReport(
  peer: { version: string; rounds: PeerRun[]; paired?: { engineTokensPerSecond: number; peerTokensPerSecond: number; identical: number; n: number }[] },
  engine: EngineRounds[],
  baselineLabel: string,
  baselineOutputs?: { tokenIds: number[] }[],
): PeerReport {
  const peerTps = median(peer.rounds.map((r) => r.tokensPerSecond));
  const last = peer.rounds[peer.rounds.length - 1];
  let same = 0;
  if (baselineOutputs) last.outputs.forEach((o, i) => (same += baselineOutputs[i] && o.tokenIds.join(',') === baselineOutputs[i].tokenIds.join(',') ? 1 : 0));
  const rows = engine.map((e) => {
    const base = engine.find((b) => b.label === baselineLabel && b.batch === e.batch)!;
    const tps = median(e.tokensPerSecond);
    return {
      label: e.label,
      model: e.model,
      batch: e.batch,
      tokensPerSecond: tps,
      ratioToAr: tps / median(base.tokensPerSecond),
      ratioToPeer: tps / peerTps,
      ratioToPeerPerRound: median(e.tokensPerSecond.map((t, r) => t / peer.rounds[Math.min(r, peer.rounds.length - 1)].tokensPerSecond)),
    };
  });
  const paired = peer.paired?.length
    ? {
        engineTokensPerSecond: median(peer.paired.map((p) => p.engineTokensPerSecond)),
        peerTokensPerSecond: median(peer.paired.map((p) => p.peerTokensPerSecond)),
        ratio: median(peer.paired.map((p) => p.engineTokensPerSecond / p.peerTokensPerSecond)),
        identical: Math.min(...peer.paired.map((p) => p.identical)),
        of: peer.paired[0].n,
      }
    : undefined;
  return {
    peer: `transformers.js ${peer.version}`,
    paired,
    rounds: peer.rounds.length,
    peerTokensPerSecond: peerTps,
    peerAccuracy: median(peer.rounds.map((r) => r.correct / r.n)),
    identicalOutputs: { same, of: baselineOutputs ? last.outputs.length : 0 },
    rows,
  };
}

/** Prints the report as a table (tokens/s and ratios are medians over rounds). */
export function printPeerReport(r: PeerReport): void {
  const f2 = (x: number) => x.toFixed(2);
  const head = ['model', 'policy', 'batch', 'tokens/s', 'x ar', 'x tjs', 'x tjs per round'];
  const body = [
    ['tiny-ar (peer)', r.peer, '1', r.peerTokensPerSecond.toFixed(1), '', '1.00', ''],
    ...r.rows.map((x) => [x.model, x.label, String(x.batch), x.tokensPerSecond.toFixed(1), f2(x.ratioToAr), f2(x.ratioToPeer), f2(x.ratioToPeerPerRound)]),
  ];
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i < 2 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  console.log(`\nAgainst the peer, ${r.peer} at batch 1 on the --ar weights (medians of ${r.rounds} rounds; x tjs per round = median of each round's ratio):`);
  console.log([line(head), w.map((x) => '-'.repeat(x)).join('  '), ...body.map(line)].join('\n'));
  const same = `${r.identicalOutputs.same}/${r.identicalOutputs.of}`;
  console.log(`  peer accuracy ${(r.peerAccuracy * 100).toFixed(1)}%; greedy outputs identical to the engine's ar: ${same}`);
  if (r.paired) {
    const p = r.paired;
    console.log(
      `  paired (engine ar and the peer alternating problem by problem, batch 1): engine ar ${p.engineTokensPerSecond.toFixed(1)} tokens/s, ` +
        `transformers.js ${p.peerTokensPerSecond.toFixed(1)} tokens/s, engine/peer ${p.ratio.toFixed(2)}x (median of per-round ratios); ` +
        `identical outputs ${p.identical}/${p.of}`,
    );
  }
}
