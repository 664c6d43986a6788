// defineJob: one object per job kind that names its queue and job, validates its payload and
// result at runtime (zod) and carries its default BullMQ options. Gateway and worker import the
// same object, so they cannot disagree on a payload.
import type { JobsOptions } from 'bullmq';
import { type z } from 'zod';
import type { QueueKind } from './queues';

export class JobValidationError extends Error {
  constructor(
    readonly what: string,
    readonly issues: { path: string; message: string }[],
  ) {
    super(`invalid ${what}: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`);
    this.name = 'JobValidationError';
  }
}

export function issuesOf(e: z.ZodError): { path: string; message: string }[] {
  return e.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
}

export interface JobDefinition<K extends QueueKind, P extends z.ZodType, R extends z.ZodType> {
  kind: K;
  /** BullMQ job name inside the queue. */
  name: string;
  /** Whether the queue is per model (queueName(kind, model)). */
  perModel: boolean;
  payload: P;
  result: R;
  /** Default BullMQ options (attempts, backoff); retention comes from config (libs/queue). */
  defaults: JobsOptions;
  /** Validates a payload; throws JobValidationError listing every issue. */
  parsePayload(v: unknown): z.output<P>;
  safeParsePayload(v: unknown): z.ZodSafeParseResult<z.output<P>>;
  parseResult(v: unknown): z.output<R>;
}

export function defineJob<K extends QueueKind, P extends z.ZodType, R extends z.ZodType>(def: {
  kind: K;
  name: string;
  perModel?: boolean;
  payload: P;
  result: R;
  defaults: JobsOptions;
}): JobDefinition<K, P, R> {
  return Object.freeze({
    kind: def.kind,
    name: def.name,
    perModel: def.perModel ?? false,
    payload: def.payload,
    result: def.result,
    defaults: Object.freeze({ ...def.defaults }),
    parsePayload(v: unknown) {
      const r = def.payload.safeParse(v);
      if (!r.success) throw new JobValidationError(`${def.kind} payload`, issuesOf(r.error));
      return r.data;
    },
    safeParsePayload: (v: unknown) => def.payload.safeParse(v),
    parseResult(v: unknown) {
      const r = def.result.safeParse(v);
      if (!r.success) throw new JobValidationError(`${def.kind} result`, issuesOf(r.error));
      return r.data;
    },
  });
}
