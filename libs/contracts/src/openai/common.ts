// OpenAI wire shapes shared by the gateway (validation at the edge), the CLI (typed client) and the
// OpenAPI document (z.toJSONSchema). Field names stay snake_case as on the wire.
import { z } from 'zod';

/** OpenAI's error body: every 4xx/5xx from the gateway has this shape. */
export const apiErrorSchema = z
  .object({
    error: z.object({
      message: z.string(),
      type: z.string().describe('invalid_request_error, authentication_error, permission_error, not_found_error, rate_limit_error, server_error, ...'),
      param: z.string().nullable(),
      code: z.string().nullable(),
    }),
  })
  .meta({ id: 'Error' });
export type ApiErrorBody = z.infer<typeof apiErrorSchema>;

/**
 * dLLM decoding knobs accepted as extra body fields next to the OpenAI ones (snake_case on the wire).
 * Types only here; ranges and defaults belong to decodeOptionsSchema (decode/options.ts), which the gateway
 * applies after mapping these names to the engine's camelCase keys (see DLLM_EXTRA_TO_ENGINE).
 */
export const dllmExtrasShape = {
  policy: z.string().optional().describe("Decoding policy: 'ar' | 'fast-dllm-v2' | 'entropy' | 'adablock'"),
  block_size: z.number().int().optional().describe('Tokens per diffusion block'),
  sub_block_size: z
    .number()
    .int()
    .optional()
    .describe("Tokens per sub-block (Fast-dLLM v2); default: the model's decode_defaults (tiny-dllm: 32, the whole block), else 8"),
  threshold: z.number().optional().describe('Confidence threshold for parallel unmasking'),
  entropy_threshold: z.number().optional().describe("Entropy bound for the 'entropy' policy"),
  delimiter_threshold: z.number().optional().describe("Delimiter confidence for the 'adablock' policy"),
  sub_block_cache: z
    .boolean()
    .optional()
    .describe(
      "Sub-block cache (Fast-dLLM v2): after a block's first step run only the active sub-block against the kept block K/V (default true; false = full block windows every step)",
    ),
  top_k: z.number().int().optional().describe('Top-k sampling (0 = off)'),
  stop_token_ids: z.array(z.number().int()).optional().describe('Extra token ids that end generation'),
  trajectory: z.boolean().optional().describe('Record the unmasking trajectory (native jobs only return it)'),
} as const;

/** Wire name -> engine DecodeOptions key, for the extras and the OpenAI sampling fields. */
export const DLLM_EXTRA_TO_ENGINE = {
  policy: 'policy',
  block_size: 'blockSize',
  sub_block_size: 'subBlockSize',
  threshold: 'threshold',
  entropy_threshold: 'entropyThreshold',
  delimiter_threshold: 'delimiterThreshold',
  sub_block_cache: 'subBlockCache',
  top_k: 'topK',
  stop_token_ids: 'stopTokenIds',
  trajectory: 'trajectory',
  max_tokens: 'maxNewTokens',
  max_completion_tokens: 'maxNewTokens',
  temperature: 'temperature',
  top_p: 'topP',
  seed: 'seed',
  stop: 'stop',
} as const;

/** Engine key -> wire name (for error messages that point at the field the client sent). */
export const ENGINE_TO_WIRE: Record<string, string> = Object.fromEntries(
  Object.entries(DLLM_EXTRA_TO_ENGINE)
    .filter(([wire]) => wire !== 'max_completion_tokens')
    .map(([wire, engine]) => [engine, wire]),
);

export const usageSchema = z
  .object({ prompt_tokens: z.number().int(), completion_tokens: z.number().int(), total_tokens: z.number().int() })
  .meta({ id: 'Usage' });

/** Engine statistics returned next to usage on every completion (non-OpenAI field `dllm`). */
export const dllmStatsSchema = z
  .object({
    forwards: z.number().int().describe('Model forward passes used for this completion'),
    tpf: z.number().describe('Committed tokens per forward pass'),
    wall_ms: z.number().describe('Engine wall time for this request'),
    finish_reason: z.string().describe("Engine finish reason: 'stop' | 'length' | 'cancelled'"),
    job_id: z.string(),
    model_version: z.string().optional(),
    prefix_cache_hit_tokens: z.number().int().optional(),
  })
  .meta({ id: 'DllmStats' });
export type DllmStats = z.infer<typeof dllmStatsSchema>;

const stopSchema = z
  .union([z.string(), z.array(z.string()).max(8)])
  .nullish()
  .describe('Up to 8 stop strings');

/** OpenAI sampling fields common to completions and chat completions. */
export const samplingShape = {
  model: z.string().min(1).describe('Model name, see GET /v1/models'),
  max_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  n: z.literal(1).nullish().describe('Only 1 is supported; use seeds or /v1/batches for several samples'),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  stop: stopSchema,
  seed: z.number().int().nullish(),
  user: z.string().max(256).nullish(),
  presence_penalty: z.literal(0).nullish().describe('Not supported (must be 0 or absent)'),
  frequency_penalty: z.literal(0).nullish().describe('Not supported (must be 0 or absent)'),
  logit_bias: z
    .record(z.string(), z.number())
    .nullish()
    .refine((v) => !v || Object.keys(v).length === 0, 'logit_bias is not supported'),
  metadata: z.record(z.string(), z.string()).nullish(),
  ...dllmExtrasShape,
} as const;
