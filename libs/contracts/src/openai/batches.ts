import { z } from 'zod';

export const BATCH_ENDPOINTS = ['/v1/completions', '/v1/chat/completions'] as const;
export type BatchEndpoint = (typeof BATCH_ENDPOINTS)[number];

/** One line of a batch input file. The body is validated with the endpoint's request schema. */
export const batchInputLineSchema = z.strictObject({
  custom_id: z.string().min(1).max(512),
  method: z.literal('POST'),
  url: z.enum(BATCH_ENDPOINTS),
  body: z.record(z.string(), z.unknown()),
});
export type BatchInputLine = z.infer<typeof batchInputLineSchema>;

/** completion_window: a number and a unit (s, m, h, d), e.g. "24h". */
export const completionWindowSchema = z.string().regex(/^[1-9]\d{0,6}[smhd]$/, 'completion_window must look like "24h" (a number then s, m, h or d)');

export function parseWindowSeconds(window: string): number {
  const n = Number(window.slice(0, -1));
  return n * { s: 1, m: 60, h: 3600, d: 86400 }[window.slice(-1) as 's' | 'm' | 'h' | 'd'];
}

export const createBatchRequestSchema = z
  .strictObject({
    input_file_id: z.string().min(1),
    endpoint: z.enum(BATCH_ENDPOINTS),
    completion_window: completionWindowSchema,
    metadata: z.record(z.string().max(64), z.string().max(512)).nullish(),
  })
  .meta({ id: 'CreateBatchRequest' });
export type CreateBatchRequest = z.infer<typeof createBatchRequestSchema>;

export const BATCH_STATUSES = ['validating', 'failed', 'in_progress', 'finalizing', 'completed', 'expired', 'cancelling', 'cancelled'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

const ts = z.number().int().nullable();
export const batchSchema = z
  .object({
    id: z.string(),
    object: z.literal('batch'),
    endpoint: z.string(),
    errors: z
      .object({
        object: z.literal('list'),
        data: z.array(z.object({ code: z.string(), message: z.string(), param: z.string().nullable(), line: z.number().int().nullable() })),
      })
      .nullable(),
    input_file_id: z.string(),
    completion_window: z.string(),
    status: z.enum(BATCH_STATUSES),
    output_file_id: z.string().nullable(),
    error_file_id: z.string().nullable(),
    created_at: z.number().int(),
    in_progress_at: ts,
    expires_at: ts,
    finalizing_at: ts,
    completed_at: ts,
    failed_at: ts,
    expired_at: ts,
    cancelling_at: ts,
    cancelled_at: ts,
    request_counts: z.object({ total: z.number().int(), completed: z.number().int(), failed: z.number().int() }),
    metadata: z.record(z.string(), z.string()).nullable(),
  })
  .meta({ id: 'Batch' });
export type Batch = z.infer<typeof batchSchema>;

/** One line of a batch output or error file (OpenAI's format). */
export const batchOutputLineSchema = z.object({
  id: z.string(),
  /** null only on an error line for an input line whose custom_id could not be read (e.g. invalid JSON). */
  custom_id: z.string().nullable(),
  response: z.object({ status_code: z.number().int(), request_id: z.string(), body: z.unknown() }).nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});
export type BatchOutputLine = z.infer<typeof batchOutputLineSchema>;

export const fileObjectSchema = z
  .object({
    id: z.string(),
    object: z.literal('file'),
    bytes: z.number().int(),
    created_at: z.number().int(),
    expires_at: z.number().int().nullable().optional(),
    filename: z.string(),
    purpose: z.string(),
    status: z.literal('processed'),
  })
  .meta({ id: 'File' });
export type FileObject = z.infer<typeof fileObjectSchema>;

export const FILE_PURPOSES = ['batch', 'batch_output'] as const;
