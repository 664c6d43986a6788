// The job catalogue: every job kind, one line each. Adding a kind = one file under jobs/ + one
// line here (+ a worker module that handles it; the worker refuses to boot without one).
import type { z } from 'zod';
import type { JobDefinition } from './define-job';
import { generationJob } from './jobs/generation';
import { rolloutJob } from './jobs/rollout';
import { distillJob } from './jobs/distill';
import type { QueueKind } from './queues';

export const catalogue = {
  generation: generationJob,
  rollout: rolloutJob,
  distill: distillJob,
} as const satisfies Partial<{ [K in QueueKind]: JobDefinition<K, z.ZodType, z.ZodType> }>;

export type JobKind = keyof typeof catalogue;
export type JobPayload<K extends JobKind> = z.output<(typeof catalogue)[K]['payload']>;
export type JobResult<K extends JobKind> = z.output<(typeof catalogue)[K]['result']>;

export const JOB_KINDS = Object.keys(catalogue) as JobKind[];

export function jobDefinition<K extends JobKind>(kind: K): (typeof catalogue)[K] {
  const d = catalogue[kind];
  if (!d) throw new Error(`no job kind '${String(kind)}' in the catalogue`);
  return d;
}
