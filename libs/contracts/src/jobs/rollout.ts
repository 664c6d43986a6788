// RL rollout jobs. A request is a BullMQ flow in the model's rollout queue dllm.rollout.<model>:
//   parent  'aggregate'  waits for its children, scores the whole batch (LightningRL advantages), writes the JSONL and the stream
//   child   'group'      one prompt x G samples on ONE worker (they share the prompt's KV pages), verifies, stores the group
// Dynamic sampling: the gateway launches targetGroups children; a finishing child launches more
// from the reserve (the planner in @dllm/rl) while it is still active (so the parent cannot run
// early), and once the batch is full it cancels the siblings still running.
// The request itself is stored in the result store (requestKey); payloads stay small.
import { decodeOptionsSchema } from '../decode/options';
import { rewardConfigSchema, verifierSpecSchema, verifiers, VerifierError } from '@dllm/rl';
import { z } from 'zod';
import { defineJob } from '../define-job';
import { jobWorkSchema } from '../work';

export const ROLLOUT_LIMITS = Object.freeze({
  maxPrompts: 1024,
  maxGroupSize: 64,
  /** prompts x groupSize */
  maxSamples: 8192,
  maxPromptChars: 20_000,
  maxAnswerChars: 10_000,
});

const idRe = /^[A-Za-z0-9_.-]{1,128}$/;

export const rolloutPromptSchema = z.strictObject({
  /** Caller's id for the prompt (default p<index>). */
  id: z.string().regex(idRe, 'letters, digits, . _ - (1-128 chars)').optional(),
  prompt: z.string().min(1).max(ROLLOUT_LIMITS.maxPromptChars),
  /** Reference answer for the verifier (required unless the verifier carries its own, e.g. regex with a pattern). */
  answer: z.string().max(ROLLOUT_LIMITS.maxAnswerChars).optional(),
  /** Per-prompt verifier; default: the request's verifier. */
  verifier: verifierSpecSchema.optional(),
});

/** Sampling: temperature must be > 0 (greedy decoding would make every sample of a group identical). */
export const rolloutSamplingSchema = z.strictObject({
  temperature: z.number().gt(0, 'temperature must be > 0: greedy decoding collapses a group into G identical samples').max(10).default(1),
  topP: z.number().gt(0).max(1).default(1),
  topK: z.number().int().min(0).max(1_000_000).default(0),
  /** Base seed: sample i of group g uses seed + g * groupSize + i (recorded per trajectory). Default: random. */
  seed: z.number().int().min(0).max(0xffffffff).optional(),
});

const samplingKeys = ['temperature', 'topP', 'topK', 'seed', 'trajectory'] as const;

/** Decoding policy options (engine DecodeOptions minus sampling, which has its own object). */
export const rolloutDecodingSchema = z.record(z.string(), z.unknown()).superRefine((opts, ctx) => {
  for (const k of samplingKeys) if (k in opts) ctx.addIssue({ code: 'custom', path: [k], message: `set '${k}' in sampling, not decoding` });
  const r = decodeOptionsSchema.safeParse(opts);
  if (!r.success) for (const i of r.error.issues) ctx.addIssue({ code: 'custom', message: i.message, path: i.path as PropertyKey[] });
});

export const stalenessSchema = z.strictObject({
  /** Samples must come from this model version or a later one (registry order). */
  requiredVersion: z.string().min(1).max(128).optional(),
  /** At most this many registered versions behind the newest one. */
  maxStaleness: z.number().int().min(0).max(1000).optional(),
  /** mark: keep the sample flagged stale (group filtered 'stale'); reject: status 'failed' with error 'stale_policy'. */
  onStale: z.enum(['mark', 'reject']).default('mark'),
});

export const rolloutRequestSchema = z
  .strictObject({
    model: z.string().min(1).max(64),
    prompts: z.array(rolloutPromptSchema).min(1).max(ROLLOUT_LIMITS.maxPrompts),
    /** G: samples per prompt. */
    groupSize: z.number().int().min(2, 'groupSize must be >= 2: advantages are relative inside a group').max(ROLLOUT_LIMITS.maxGroupSize),
    verifier: verifierSpecSchema.default({ name: 'exact' }),
    sampling: rolloutSamplingSchema.default({ temperature: 1, topP: 1, topK: 0 }),
    decoding: rolloutDecodingSchema.default({}),
    reward: rewardConfigSchema.default(rewardConfigSchema.parse({})),
    /**
     * Groups wanted in the training batch. Fewer than prompts.length turns on dynamic sampling: the
     * rest of the prompts are a reserve launched to replace filtered groups; once the batch is full,
     * leftover groups are cancelled. Default: every prompt.
     */
    targetGroups: z.number().int().min(1).max(ROLLOUT_LIMITS.maxPrompts).optional(),
    policy: stalenessSchema.optional(),
  })
  .superRefine((r, ctx) => {
    if (r.prompts.length * r.groupSize > ROLLOUT_LIMITS.maxSamples) {
      ctx.addIssue({
        code: 'custom',
        path: ['groupSize'],
        message: `prompts x groupSize = ${r.prompts.length * r.groupSize} samples, more than the limit of ${ROLLOUT_LIMITS.maxSamples}`,
      });
    }
    if (r.targetGroups !== undefined && r.targetGroups > r.prompts.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['targetGroups'],
        message: `targetGroups (${r.targetGroups}) is more than the number of prompts (${r.prompts.length})`,
      });
    }
    const ids = new Set<string>();
    r.prompts.forEach((p, i) => {
      const id = p.id ?? `p${i}`;
      if (ids.has(id)) ctx.addIssue({ code: 'custom', path: ['prompts', i, 'id'], message: `duplicate prompt id '${id}'` });
      ids.add(id);
      const spec = p.verifier ?? r.verifier;
      try {
        const v = verifiers.bind(spec);
        if (v.needsAnswer && p.answer === undefined)
          ctx.addIssue({ code: 'custom', path: ['prompts', i, 'answer'], message: `missing reference answer (verifier '${spec.name}' needs one)` });
        // answers (and answer patterns) that could only match vacuously make every sample correct: refused here
        const problem = p.answer === undefined ? null : v.checkAnswer(p.answer);
        if (problem) ctx.addIssue({ code: 'custom', path: ['prompts', i, 'answer'], message: `${problem} (verifier '${spec.name}')` });
      } catch (e) {
        if (!(e instanceof VerifierError)) throw e;
        ctx.addIssue({ code: 'custom', path: p.verifier ? ['prompts', i, 'verifier'] : ['verifier'], message: e.message });
      }
    });
  });
export type RolloutRequest = z.output<typeof rolloutRequestSchema>;
export type RolloutRequestInput = z.input<typeof rolloutRequestSchema>;

/** Parent job: aggregates the flow. */
export const rolloutPayloadSchema = z.strictObject({
  rolloutId: z.string().regex(idRe),
  owner: z.string().min(1).max(128),
  model: z.string().min(1).max(64),
  /** Result-store key of the validated RolloutRequest. */
  requestKey: z.string().min(1),
  targetGroups: z.number().int().min(1),
  totalPrompts: z.number().int().min(1),
  createdAt: z.number().int().min(0),
  /** The gateway drew the base seed (sampling.seed was omitted); the stored request carries it. */
  seedDrawn: z.boolean().optional(),
});
export type RolloutPayload = z.output<typeof rolloutPayloadSchema>;

/** Child job: one group (one prompt x groupSize samples). */
export const rolloutGroupPayloadSchema = z.strictObject({
  rolloutId: z.string().regex(idRe),
  model: z.string().min(1).max(64),
  requestKey: z.string().min(1),
  groupIndex: z.number().int().min(0),
  createdAt: z.number().int().min(0),
  /** G samples of this group, for the pending-work gauge. */
  work: jobWorkSchema.optional(),
});
export type RolloutGroupPayload = z.output<typeof rolloutGroupPayloadSchema>;

export const groupSummarySchema = z.object({
  groupId: z.string(),
  groupIndex: z.number().int(),
  promptId: z.string(),
  size: z.number().int(),
  correct: z.number().int(),
  tpfRange: z.number(),
  kept: z.boolean(),
  filterReason: z.string().nullable(),
  policyVersions: z.array(z.string()),
});

/** What a group child returns (small; the records are in the result store under recordsKey). */
export const rolloutGroupReturnSchema = z.object({
  groupIndex: z.number().int(),
  recordsKey: z.string().nullable(),
  /** The group was never generated: the batch was already full when it started. */
  skipped: z.boolean(),
  samples: z.number().int(),
  tokens: z.number().int(),
  promptTokens: z.number().int(),
  prefixHitTokens: z.number().int(),
  wallMs: z.number(),
});
export type RolloutGroupReturn = z.output<typeof rolloutGroupReturnSchema>;

export const rolloutResultSchema = z.object({
  rolloutId: z.string(),
  model: z.string(),
  targetGroups: z.number().int(),
  launchedGroups: z.number().int(),
  keptGroups: z.number().int(),
  keptSamples: z.number().int(),
  samples: z.number().int(),
  filtered: z.record(z.string(), z.number()),
  rewardMean: z.number(),
  rewardStd: z.number(),
  groups: z.array(groupSummarySchema),
  /** Result-store key of the JSONL of every trajectory record. */
  trajectoriesKey: z.string(),
  /** Tokens generated; prompt tokens; prompt tokens served from the shared prefix cache (prefill saved). */
  tokens: z.object({ completion: z.number().int(), prompt: z.number().int(), prefixHit: z.number().int() }),
  policyVersions: z.array(z.string()),
  /** Base seed of the rollout (sample i of group g used seed + g * groupSize + i, mod 2^32). */
  seed: z.number().int().min(0),
  /** True when the request omitted sampling.seed and the gateway drew this one at random. */
  seedDrawn: z.boolean(),
  /** The rollout was cancelled: groups that had not started were skipped, running ones stopped at a block boundary. */
  cancelled: z.boolean(),
  wallMs: z.number(),
});
export type RolloutResult = z.output<typeof rolloutResultSchema>;

/** What the parent returns to BullMQ: the stored result's key and a summary. */
export const rolloutReturnSchema = z.object({
  resultKey: z.string(),
  trajectoriesKey: z.string(),
  keptGroups: z.number().int(),
  samples: z.number().int(),
});
export type RolloutReturn = z.output<typeof rolloutReturnSchema>;

/**
 * Base seed of a rollout: the request's sampling.seed (the gateway fills it in when omitted). For a
 * request stored without one (submitted before that rule), a value derived from the rollout id, so
 * every group of one rollout still shares one base and two rollouts differ (never a constant).
 */
export function rolloutBaseSeed(rolloutId: string, seed: number | undefined): number {
  if (seed !== undefined) return seed >>> 0;
  let h = 0x811c9dc5; // FNV-1a, 32 bit
  for (let i = 0; i < rolloutId.length; i++) h = Math.imul(h ^ rolloutId.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** BullMQ job ids: the parent is the rollout id; children are <rolloutId>.g<index>. */
export const rolloutGroupJobId = (rolloutId: string, groupIndex: number) => `${rolloutId}.g${groupIndex}`;

/** Redis keys of the dynamic-sampling state (under the queue prefix). */
export const rolloutStateKeys = (prefix: string, rolloutId: string) => ({
  /** hash: target, total, launched, full, owner, cancelled ('1' once POST /v1/rollouts/:id/cancel was called) */
  state: `${prefix}:dllm-rollout:${rolloutId}:state`,
  /** list of '<groupIndex>:<0|1 kept>' in finish order */
  finished: `${prefix}:dllm-rollout:${rolloutId}:finished`,
  /** set of group indices launched and not finished */
  inflight: `${prefix}:dllm-rollout:${rolloutId}:inflight`,
});

export const rolloutJob = defineJob({
  kind: 'rollout',
  name: 'aggregate',
  perModel: true,
  payload: rolloutPayloadSchema,
  result: rolloutReturnSchema,
  defaults: { attempts: 2, backoff: { type: 'exponential', delay: 1000 } },
});

export const rolloutGroupJob = defineJob({
  kind: 'rollout',
  name: 'group',
  perModel: true,
  payload: rolloutGroupPayloadSchema,
  result: rolloutGroupReturnSchema,
  // a failed group fails only itself (the parent still aggregates: its group is 'incomplete')
  defaults: { attempts: 2, backoff: { type: 'exponential', delay: 500 } },
});
