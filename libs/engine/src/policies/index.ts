import type { PolicyName } from '../options';
import { adablockPolicy } from './adablock';
import { arPolicy } from './ar';
import { entropyPolicy } from './entropy';
import { fastDllmV2Policy } from './fast-dllm-v2';
import type { DecodePolicy } from './types';

export const policies: Record<PolicyName, DecodePolicy> = {
  ar: arPolicy,
  'fast-dllm-v2': fastDllmV2Policy,
  entropy: entropyPolicy,
  adablock: adablockPolicy,
};

export { thresholdSelect } from './fast-dllm-v2';
export { entropySelect } from './entropy';
export { planAdaptiveBlock } from './adablock';
export type { Candidate, DecodePolicy, PolicyContext, BlockPlanInput } from './types';
