import type { Candidate, DecodePolicy } from './types';

/** Autoregressive baseline: causal attention, one token per forward, KV cache. */
export const arPolicy: DecodePolicy = {
  name: 'ar',
  mode: 'causal',
  step(candidates: readonly Candidate[]): Candidate[] {
    if (candidates.length === 0) return [];
    // The engine offers exactly the next position: commit it.
    return [candidates[0]];
  },
};

/**
 * `ar` on a block-diffusion model: AR order with the model's own attention, not a causal mask it was
 * never trained with (that scored 17-40% on arith against 78% in AR order). The block loop runs with
 * sub-blocks of one slot, so each forward (block-causal, token shift: slot j from output j-1) draws
 * exactly the next position and this step commits it; with the sub-block cache (the default) the
 * steps after a block's first window run 2 slots against the kept window K/V. The commit forward of a
 * finished block writes its K/V and gives the next block's first token. One token per forward (TPF 1).
 */
export const arBlockOrderPolicy: DecodePolicy = {
  name: 'ar',
  mode: 'block',
  // one-slot sub-blocks offer exactly the next position, as the causal loop does
  step: arPolicy.step,
};
