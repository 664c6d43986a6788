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
