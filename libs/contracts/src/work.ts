// The work a queued job stands for, recorded by its producer so that pending work can be measured
// in forward passes (what a worker pool actually spends) instead of job counts: a 16-sample rollout
// group of 512 tokens and a 20-token completion are not the same job. Read by the pending-work
// gauge (dllm_pending_forward_passes) that queue-driven autoscaling follows.
import { decodeOptionsSchema } from './decode/options';
import { z } from 'zod';

export const jobWorkSchema = z.strictObject({
  /** sequences this job decodes (1 for a completion, G for a rollout group, questions for a distillation). */
  sequences: z.number().int().min(0).max(10_000_000),
  /** generation cap per sequence. */
  maxNewTokens: z.number().int().min(1).max(8192),
  /** decoding policy as requested ('default' = the model's own), for the TPF estimate. */
  policy: z.string().min(1).max(32),
});
export type JobWork = z.output<typeof jobWorkSchema>;

const { maxNewTokens: maxNewTokensField, policy: policyField } = decodeOptionsSchema.shape;

/**
 * The work of `sequences` decodes with these client-set decode options. Reads only the two fields
 * it needs (the payload schema validates the whole object once); an invalid value costs like the
 * default. On every submission, so no full parse here.
 */
export function workOf(options: unknown, sequences: number): JobWork {
  const o = (options ?? {}) as { maxNewTokens?: unknown; policy?: unknown };
  const maxNewTokens = maxNewTokensField.safeParse(o.maxNewTokens);
  const policy = policyField.safeParse(o.policy);
  return {
    sequences,
    maxNewTokens: maxNewTokens.success ? maxNewTokens.data : maxNewTokensField.parse(undefined),
    policy: (policy.success ? policy.data : undefined) ?? 'default',
  };
}

/**
 * Expected forward passes of `work`: per sequence one prefill plus maxNewTokens / TPF decode passes
 * (an upper bound: sequences that stop early cost less). Counted per sequence, like the engine's
 * `stats.forwards` and `dllm_forwards_total`, so a worker's measured rate of that counter is the
 * capacity the gauge is compared with.
 */
export function expectedForwards(work: JobWork, tpf: number): number {
  return work.sequences * (1 + work.maxNewTokens / Math.max(tpf, 0.05));
}
