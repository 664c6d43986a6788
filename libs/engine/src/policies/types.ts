// A decoding policy is one small unit: given the drawn candidates of the current step it says which
// to commit. The engine owns the loop (windows, sub-blocks, forwards, cache); see ../sequence.ts.
import type { ResolvedOptions } from '../options';
import type { Draw } from '../sampling';

/** One still-masked slot of the active sub-block, with the token drawn for it this step. */
export interface Candidate extends Draw {
  /** Index in the window (0 = the block's first slot). */
  slot: number;
}

export interface PolicyContext {
  options: ResolvedOptions;
}

/** What an adaptive policy needs to choose the block's length at the first step of a block. */
export interface BlockPlanInput {
  /** Draws for window slots [first .. first + n), in slot order (first = first masked slot). */
  lookahead: Candidate[];
  /** Delimiter token ids of the model. */
  delimiters: ReadonlySet<number>;
  /** Default block length from the block start. */
  defaultLength: number;
  /** Largest allowed length from the block start (the lookahead window end). */
  maxLength: number;
}

export interface DecodePolicy {
  readonly name: ResolvedOptions['policy'];
  /** 'causal': one token per forward with KV cache. 'block': block diffusion (window + commit forward). */
  readonly mode: 'causal' | 'block';
  /** Which candidates to commit this step. Must return at least one when `candidates` is non-empty. */
  step(candidates: readonly Candidate[], ctx: PolicyContext): Candidate[];
  /** Adaptive block length (AdaBlock); absent = fixed, position-aligned blocks. */
  planBlock?(input: BlockPlanInput, ctx: PolicyContext): number;
}
