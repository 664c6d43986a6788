// Public API of the decoding engine.
export { decodeOptionsSchema, resolveOptions, POLICIES } from './options';
export type { DecodeOptions, ResolvedOptions, PolicyName } from './options';
export { Engine } from './engine';
export type { EngineCreateOptions, GenerateRequest, GenerateHooks, EngineStats } from './engine';
export type { BlockEvent, GenerationResult, Trajectory } from './sequence';
export { policies, thresholdSelect, entropySelect, planAdaptiveBlock } from './policies';
export type { Candidate, DecodePolicy } from './policies';
export { drawToken } from './sampling';
export type { Draw, SamplingParams } from './sampling';
export { Sfc32 as Rng } from '@dllm/prng';
export { KvPool } from './kv/pool';
export type { KvGeometry, PoolStats } from './kv/pool';
export type { PageMemory } from './kv/memory';
export type { ModelRunner, RunnerInfo, RunnerTensor } from './runner/runner';
export { OrtRunner } from './runner/ort-runner';
export type { EngineManifest as ModelManifest, TextCodec } from './model-dir';
export { decodeFlagSpec, decodeFlagHelp, decodeOptionsFromFlags } from './cli-options';
