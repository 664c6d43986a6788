// Generation jobs: one prompt -> one completion. The payload stays small (prompt + the options the
// client set, not the defaults), the full result is stored once in the result store (libs/storage)
// and the job's return value is a small reference (GenerationReturn), so Redis holds no big values.
import { decodeOptionsSchema } from '../decode/options';
import { z } from 'zod';
import { defineJob } from '../define-job';
import { jobWorkSchema } from '../work';

/** The decoding options as the client set them: validated with the engine's schema, kept as sent. */
export const generationOptionsSchema = z.record(z.string(), z.unknown()).superRefine((opts, ctx) => {
  const r = decodeOptionsSchema.safeParse(opts);
  if (!r.success) for (const i of r.error.issues) ctx.addIssue({ code: 'custom', message: i.message, path: i.path as PropertyKey[] });
});

export const generationPayloadSchema = z.strictObject({
  /** API key id (name), never the key. */
  owner: z.string().min(1).max(128),
  model: z.string().min(1).max(64),
  prompt: z.string(),
  options: generationOptionsSchema,
  stream: z.boolean(),
  batch: z.strictObject({ batchId: z.string().min(1), customId: z.string(), line: z.number().int().min(0) }).optional(),
  endpoint: z.enum(['completions', 'chat.completions', 'native']),
  /** ms since epoch, set by the gateway. */
  createdAt: z.number().int().min(0),
  /** What the job costs, for the pending-work gauge (set by the gateway). */
  work: jobWorkSchema.optional(),
});

export const finishReasonSchema = z.enum(['stop', 'length', 'cancelled']);

export const generationStatsSchema = z.object({
  forwards: z.number().int().min(0),
  /** Tokens per forward. */
  tpf: z.number().min(0),
  wallMs: z.number().min(0),
  prefillTokens: z.number().int().min(0).optional(),
  prefixCacheHitTokens: z.number().int().min(0).optional(),
});

export const generationResultSchema = z.object({
  text: z.string(),
  tokenIds: z.array(z.number().int()).optional(),
  finishReason: finishReasonSchema,
  usage: z.object({ promptTokens: z.number().int().min(0), completionTokens: z.number().int().min(0) }),
  stats: generationStatsSchema,
  model: z.object({ name: z.string(), version: z.string() }),
  /** Decoding trajectory when options.trajectory was set (shape owned by the engine). */
  trajectory: z.unknown().optional(),
});

/** What the job returns to BullMQ: a reference to the stored result plus a small summary. */
export const generationReturnSchema = z.object({
  resultKey: z.string().min(1),
  bytes: z.number().int().min(0),
  finishReason: finishReasonSchema,
  usage: generationResultSchema.shape.usage,
  stats: z.object({ forwards: z.number(), tpf: z.number(), wallMs: z.number() }),
});

/** job.updateProgress() payload, once per committed block. `text` is this block's delta. */
export const generationProgressSchema = z.object({
  blocks: z.number().int().min(0),
  completionTokens: z.number().int().min(0),
  forwards: z.number().int().min(0),
  text: z.string(),
});

export type GenerationPayload = z.output<typeof generationPayloadSchema>;
export type GenerationResult = z.output<typeof generationResultSchema>;
export type GenerationReturn = z.output<typeof generationReturnSchema>;
export type GenerationProgress = z.output<typeof generationProgressSchema>;
/** Alias used by the gateway. */
export type ProgressEvent = GenerationProgress;

export const generationJob = defineJob({
  kind: 'generation',
  name: 'generate',
  perModel: true,
  payload: generationPayloadSchema,
  result: generationResultSchema,
  // attempts cover crashes (a failed attempt that threw); a worker killed mid-job is recovered by
  // stalled-job detection, which does not consume attempts up to WORKER_MAX_STALLED_COUNT.
  defaults: { attempts: 2, backoff: { type: 'exponential', delay: 1000 } },
});

/** Progress event from QueueEvents / job.progress, or undefined when it is not one of ours. */
export function parseProgress(d: unknown): GenerationProgress | undefined {
  const r = generationProgressSchema.safeParse(d);
  return r.success ? r.data : undefined;
}

export function validateGenerationPayload(v: unknown) {
  return generationJob.safeParsePayload(v);
}
