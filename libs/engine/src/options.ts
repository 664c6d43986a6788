// Per-request decoding options. The schema and the resolver live in @dllm/contracts (the gateway
// decides 4xx with them without loading the engine); the engine imports them from there, never the
// reverse. This module keeps the engine's throwing form of the resolver.
import { describeIssues, resolveDecodeOptions, type ResolvedOptions } from '@dllm/contracts';
export { modelDecodeDefaults } from '@dllm/contracts';
import type { DecodeOptions } from '@dllm/contracts';

export { decodeOptionsSchema, POLICIES } from '@dllm/contracts';
export type { DecodeOptions, PolicyName, ResolvedOptions } from '@dllm/contracts';

/** The model facts the engine passes (a subset of contracts' ModelFacts). */
export interface ModelDefaults {
  kind: string;
  blockSize: number;
  vocabSize?: number;
  name?: string;
  /** The manifest's decode_defaults as engine options (modelDecodeDefaults). */
  decodeDefaults?: Partial<DecodeOptions>;
}

/**
 * Validates `input` and applies the model's defaults with the shared resolver
 * (@dllm/contracts resolveDecodeOptions). Throws RangeError('invalid decoding options: ...') listing
 * every problem.
 */
export function resolveOptions(input: Partial<DecodeOptions> | undefined, model: ModelDefaults, randomSeed: () => number): ResolvedOptions {
  const r = resolveDecodeOptions(input, { name: model.name ?? 'this model', ...model }, randomSeed);
  if (!r.ok) throw new RangeError(`invalid decoding options: ${describeIssues(r.errors).replace(/options\./g, '')}`);
  return r.options;
}
