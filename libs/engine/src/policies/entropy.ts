import type { Candidate, DecodePolicy, PolicyContext } from './types';

/**
 * dParallel's rule: commit every masked slot whose predictive entropy <= entropyThreshold (nats),
 * and always at least one (the lowest-entropy slot; lowest slot on ties).
 */
export function entropySelect(candidates: readonly Candidate[], tau: number): Candidate[] {
  if (candidates.length === 0) return [];
  const picked = candidates.filter((c) => c.entropy <= tau);
  if (picked.length > 0) return picked;
  let best = candidates[0];
  for (const c of candidates) if (c.entropy < best.entropy) best = c;
  return [best];
}

export const entropyPolicy: DecodePolicy = {
  name: 'entropy',
  mode: 'block',
  step(candidates: readonly Candidate[], ctx: PolicyContext): Candidate[] {
    return entropySelect(candidates, ctx.options.entropyThreshold);
  },
};
