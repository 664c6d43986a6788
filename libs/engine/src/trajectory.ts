// Trajectory recording for RL (docs/ENGINE.md "Trajectory"): per generated token the decoding forward
// that committed it and the probability / entropy / log-prob of the distribution it was drawn from,
// and the block spans. The decoder (sequence.ts) reports; this only records and assembles.
import type { ResolvedOptions } from './options';
import type { Draw } from './sampling';

export interface Trajectory {
  /** Generated token ids (the completion; includes the stop token when one ended it). */
  tokenIds: number[];
  /** For each generated token: the index (0-based) of the decoding forward of this sequence that committed it. */
  stepMap: number[];
  /** Probability of the committed token under the distribution it was drawn from. */
  confidence: number[];
  /** Entropy (nats) of that distribution. */
  entropy: number[];
  /** log(confidence): per-token log-prob under the per-step sampling distribution (NOT an AR likelihood). */
  logprobs: number[];
  /** Blocks as [start, end) indices into tokenIds. */
  blocks: Array<[number, number]>;
  /** Decoding forwards (window, sub-block, commit, ar); excludes KV-only prefill forwards. */
  forwards: number;
  prefillForwards: number;
  /** tokenIds.length / forwards (0 when no forward). */
  tpf: number;
  options: ResolvedOptions;
  seed: number;
  model: { name: string; version: string };
  promptTokens: number;
  prefixCacheHitTokens: number;
}

/** What a trajectory carries besides the per-token records (`TrajectoryRecorder.build`). */
export type TrajectoryMeta = Omit<Trajectory, 'tokenIds' | 'stepMap' | 'confidence' | 'entropy' | 'logprobs' | 'blocks'>;

/**
 * Records per-token draws by generated index (0 = first generated token; a later commit of the same
 * index overwrites) and the generated blocks as [start, end) spans in commit order.
 */
export class TrajectoryRecorder {
  private readonly step: number[] = [];
  private readonly conf: number[] = [];
  private readonly ent: number[] = [];
  private readonly logp: number[] = [];
  private readonly spans: Array<[number, number]> = [];

  /** Token `i` (generated index) was committed by decoding forward `step` with draw `d`. */
  record(i: number, step: number, d: Draw): void {
    this.step[i] = step;
    this.conf[i] = d.prob;
    this.ent[i] = d.entropy;
    this.logp[i] = d.logprob;
  }

  /** Adds the block span [a, b); false (nothing added) when it starts before the last span ends. */
  addBlock(a: number, b: number): boolean {
    if (this.spans.length > 0 && this.spans[this.spans.length - 1][1] > a) return false;
    this.spans.push([a, b]);
    return true;
  }

  /** End of the last block span (0 before any). */
  get lastBlockEnd(): number {
    return this.spans.length ? this.spans[this.spans.length - 1][1] : 0;
  }

  /** The trajectory of the completion `tokenIds`: records and spans cut to its length. */
  build(tokenIds: number[], meta: TrajectoryMeta): Trajectory {
    const n = tokenIds.length;
    return {
      tokenIds,
      stepMap: this.step.slice(0, n),
      confidence: this.conf.slice(0, n),
      entropy: this.ent.slice(0, n),
      logprobs: this.logp.slice(0, n),
      blocks: this.spans.filter(([a]) => a < n).map(([a, b]) => [a, Math.min(b, n)] as [number, number]),
      ...meta,
    };
  }
}
