import type { Candidate, DecodePolicy, PolicyContext } from './types';

/**
 * Fast-dLLM v2 threshold rule: commit every masked slot of the active sub-block whose probability
 * is > threshold, and always at least one (the most confident; lowest slot on ties).
 */
export function thresholdSelect(candidates: readonly Candidate[], threshold: number): Candidate[] {
  if (candidates.length === 0) return [];
  const picked = candidates.filter((c) => c.prob > threshold);
  if (picked.length > 0) return picked;
  let best = candidates[0];
  for (const c of candidates) if (c.prob > best.prob) best = c;
  return [best];
}

export const fastDllmV2Policy: DecodePolicy = {
  name: 'fast-dllm-v2',
  mode: 'block',
  step(candidates: readonly Candidate[], ctx: PolicyContext): Candidate[] {
    return thresholdSelect(candidates, ctx.options.threshold);
  },
};
