// The trajectory record: one per sample, what the learner reads (JSONL or the cursor stream).
// Decoding facts (tokens, step map, confidences, log-probs, forwards, TPF, options, seed, model
// version, prefix-cache hits) are copied from the engine's own `Trajectory` (@dllm/engine).
import type { GenerationResult, Trajectory as EngineTrajectory } from '@dllm/engine';
import { z } from 'zod';
import type { FilterReason, RewardComponents } from './advantages';

/** 2: adds promptTokenIds and policy.seq (what an outside learner needs to rebuild the exact input). */
export const TRAJECTORY_SCHEMA_VERSION = 2;

export const SAMPLE_STATUSES = ['completed', 'truncated', 'aborted', 'failed'] as const;
export type SampleStatus = (typeof SAMPLE_STATUSES)[number];

export const FILTER_REASONS = ['all_wrong', 'tpf_range_below_0.01', 'tpf_range_below_min', 'incomplete', 'batch_full', 'stale'] as const;

const finite = z.number().refine(Number.isFinite, 'must be a finite number');

export const trajectoryRecordSchema = z.strictObject({
  schema: z.literal(TRAJECTORY_SCHEMA_VERSION),
  rolloutId: z.string(),
  /** `<rolloutId>:g<groupIndex>`: unique across rollouts. */
  groupId: z.string(),
  groupIndex: z.number().int().min(0),
  sampleIndex: z.number().int().min(0),
  /** Caller's prompt id (or `p<index>`). */
  promptId: z.string(),
  prompt: z.string(),
  /** Reference answer the verifier compared against (null when the verifier needs none). */
  answer: z.string().nullable(),
  verifier: z.string(),
  promptTokens: z.number().int().min(0),
  /**
   * The prompt's token ids exactly as the engine consumed them (the policy version's tokenizer):
   * a learner concatenates promptTokenIds + responseTokenIds to rebuild the sequence. Empty when
   * the sample never reached the engine (failed before tokenization).
   */
  promptTokenIds: z.array(z.number().int().min(0)),
  /** Generated token ids (includes the stop token when one ended the response). */
  responseTokenIds: z.array(z.number().int().min(0)),
  responseText: z.string(),
  responseLength: z.number().int().min(0),
  /** Per response token: index of this sample's decoding forward that unmasked (committed) it. */
  stepMap: z.array(z.number().int().min(0)),
  /**
   * Per response token: log of the probability the committed token had under the per-step sampling
   * distribution it was drawn from (after temperature / top-k / top-p), at the step it was unmasked.
   * Not an autoregressive likelihood and not the learner's fully-masked log-prob: the learner recomputes those.
   */
  logprobs: z.array(finite),
  /** exp(logprob) per token, and the entropy (nats) of that distribution. */
  confidence: z.array(finite),
  entropy: z.array(finite),
  /** Blocks as [start, end) into responseTokenIds. */
  blocks: z.array(z.tuple([z.number().int(), z.number().int()])),
  /** Decoding forwards (= distinct denoising steps, commit forwards included). */
  numForwards: z.number().int().min(0),
  /** responseLength / numForwards (0 with no forward). */
  tpf: finite,
  extracted: z.string().nullable(),
  correct: z.boolean(),
  truncated: z.boolean(),
  reward: z.strictObject({ accuracyRaw: finite, tpfRaw: finite, accuracy: finite, tpf: finite, total: finite }).nullable(),
  /** Batch advantage; null when the group is filtered out or the sample did not complete. */
  advantage: finite.nullable(),
  kept: z.boolean(),
  filterReason: z.enum(FILTER_REASONS).nullable(),
  /**
   * Model name + version that produced the sample (the KV pool is namespaced by it), and that
   * version's registry sequence number (1, 2, ... in registration order; 0 when the version was never
   * registered, e.g. the weights a worker booted with before any registration).
   */
  policy: z.strictObject({ name: z.string(), version: z.string(), seq: z.number().int().min(0) }),
  /** Policy version lag behind the required version: true when over the staleness bound. */
  stale: z.boolean(),
  /** This sample's sampling seed: the rollout's base seed + groupIndex * groupSize + sampleIndex (mod 2^32). */
  seed: z.number().int().min(0),
  /** The resolved decoding options (engine `ResolvedOptions`). */
  decoding: z.record(z.string(), z.unknown()),
  prefixCache: z.strictObject({ hitTokens: z.number().int().min(0), promptTokens: z.number().int().min(0), prefillTokens: z.number().int().min(0) }),
  status: z.enum(SAMPLE_STATUSES),
  finishReason: z.enum(['stop', 'length', 'cancelled']).nullable(),
  error: z.string().nullable(),
  wallMs: z.number().min(0),
  createdAt: z.string(),
});
export type TrajectoryRecord = z.infer<typeof trajectoryRecordSchema>;

/** A policy version as recorded on a sample: name, version and registry sequence number (0 = never registered). */
export interface RecordedPolicy {
  name: string;
  version: string;
  seq: number;
}

export interface SampleContext {
  rolloutId: string;
  groupIndex: number;
  sampleIndex: number;
  promptId: string;
  prompt: string;
  answer: string | null;
  verifier: string;
  /** The prompt's token ids as given to the engine (empty when unknown). */
  promptTokenIds: number[];
}

export function groupIdOf(rolloutId: string, groupIndex: number): string {
  return `${rolloutId}:g${groupIndex}`;
}

/** Status from the engine's finish reason: 'length' is a truncated response. */
export function statusOf(result: Pick<GenerationResult, 'finishReason'>): SampleStatus {
  return result.finishReason === 'length' ? 'truncated' : result.finishReason === 'cancelled' ? 'aborted' : 'completed';
}

/** The fields every record of a sample carries, whatever became of its generation. */
function identityFields(ctx: SampleContext) {
  return {
    schema: TRAJECTORY_SCHEMA_VERSION,
    rolloutId: ctx.rolloutId,
    groupId: groupIdOf(ctx.rolloutId, ctx.groupIndex),
    groupIndex: ctx.groupIndex,
    sampleIndex: ctx.sampleIndex,
    promptId: ctx.promptId,
    prompt: ctx.prompt,
    answer: ctx.answer,
    verifier: ctx.verifier,
    promptTokenIds: ctx.promptTokenIds,
  } as const;
}

/**
 * A record from an engine result (generated with `trajectory: true`) and the verifier's verdict.
 * Reward, advantage and kept are filled in later, when the whole group (then batch) is scored.
 * `policySeq` is the registry sequence number of the version that produced it (0: never
 * registered); callers that do not know it yet pass 0 and set `policy.seq` later.
 * Throws RangeError when the result has no trajectory.
 */
export function recordFromGeneration(
  ctx: SampleContext,
  result: GenerationResult,
  verdict: { correct: boolean; extracted: string | null },
  now: Date = new Date(),
  policySeq = 0,
): TrajectoryRecord {
  const t: EngineTrajectory | undefined = result.trajectory;
  if (!t) throw new RangeError('recordFromGeneration needs a result generated with options.trajectory = true');
  const status = statusOf(result);
  return {
    ...identityFields(ctx),
    promptTokens: t.promptTokens,
    responseTokenIds: t.tokenIds,
    responseText: result.text,
    responseLength: t.tokenIds.length,
    stepMap: t.stepMap,
    logprobs: t.logprobs,
    confidence: t.confidence,
    entropy: t.entropy,
    blocks: t.blocks,
    numForwards: t.forwards,
    tpf: t.tpf,
    extracted: verdict.extracted,
    correct: verdict.correct && status === 'completed',
    truncated: status === 'truncated',
    reward: null,
    advantage: null,
    kept: false,
    filterReason: null,
    policy: { name: t.model.name, version: t.model.version, seq: policySeq },
    stale: false,
    seed: t.seed,
    decoding: { ...t.options } as Record<string, unknown>,
    prefixCache: { hitTokens: t.prefixCacheHitTokens, promptTokens: t.promptTokens, prefillTokens: result.stats.prefillTokens },
    status,
    finishReason: result.finishReason,
    error: null,
    wallMs: result.stats.wallMs,
    createdAt: now.toISOString(),
  };
}

/** A record for a sample that produced no generation (engine error, cancelled before start). */
export function failedRecord(
  ctx: SampleContext,
  status: 'aborted' | 'failed',
  error: string,
  seed: number,
  policy: RecordedPolicy,
  decoding: Record<string, unknown>,
  now: Date = new Date(),
): TrajectoryRecord {
  return {
    ...identityFields(ctx),
    promptTokens: 0,
    responseTokenIds: [],
    responseText: '',
    responseLength: 0,
    stepMap: [],
    logprobs: [],
    confidence: [],
    entropy: [],
    blocks: [],
    numForwards: 0,
    tpf: 0,
    extracted: null,
    correct: false,
    truncated: false,
    reward: null,
    advantage: null,
    kept: false,
    filterReason: 'incomplete',
    policy,
    stale: false,
    seed,
    decoding,
    prefixCache: { hitTokens: 0, promptTokens: 0, prefillTokens: 0 },
    status,
    finishReason: null,
    error,
    wallMs: 0,
    createdAt: now.toISOString(),
  };
}

export type { FilterReason, RewardComponents };
