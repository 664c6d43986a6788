import { thresholdSelect } from './fast-dllm-v2';
import type { BlockPlanInput, Candidate, DecodePolicy, PolicyContext } from './types';

/**
 * AdaBlock-dLLM block length: among lookahead slots whose drawn token is a delimiter, take the most
 * confident; if its confidence >= delimiterThreshold the block ends right after it, otherwise the
 * block has the default length. Returns a length measured from the block start (window slot 0).
 */
export function planAdaptiveBlock(input: BlockPlanInput, delimiterThreshold: number): number {
  let best: Candidate | null = null;
  for (const c of input.lookahead) {
    if (!input.delimiters.has(c.token)) continue;
    if (!best || c.prob > best.prob) best = c;
  }
  if (best && best.prob >= delimiterThreshold) return Math.min(best.slot + 1, input.maxLength);
  return Math.min(input.defaultLength, input.maxLength);
}

export const adablockPolicy: DecodePolicy = {
  name: 'adablock',
  mode: 'block',
  step(candidates: readonly Candidate[], ctx: PolicyContext): Candidate[] {
    return thresholdSelect(candidates, ctx.options.threshold);
  },
  planBlock(input: BlockPlanInput, ctx: PolicyContext): number {
    return planAdaptiveBlock(input, ctx.options.delimiterThreshold);
  },
};
