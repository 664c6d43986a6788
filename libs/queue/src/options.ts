// Job options: the catalogue's defaults (attempts, backoff) plus retention from config, so completed
// and failed jobs are trimmed by count and age and Redis memory stays bounded.
import type { JobsOptions } from 'bullmq';
import { catalogue, type JobKind } from '@dllm/contracts';

export interface Retention {
  completed: { count: number; ageSeconds: number };
  failed: { count: number; ageSeconds: number };
}

export function retentionOptions(r: Retention): Pick<JobsOptions, 'removeOnComplete' | 'removeOnFail'> {
  return {
    removeOnComplete: { count: r.completed.count, age: r.completed.ageSeconds },
    removeOnFail: { count: r.failed.count, age: r.failed.ageSeconds },
  };
}

/** Options for adding a job of `kind` (pass jobId etc. in `extra`). */
export function jobOptions(kind: JobKind, retention: Retention, extra: JobsOptions = {}): JobsOptions {
  return definitionOptions(catalogue[kind], retention, extra);
}

/**
 * Options for adding a job of one definition (a catalogue kind or a child job such as
 * rolloutGroupJob): its defaults (attempts, backoff), retention, then `extra` (jobId, parent...).
 */
export function definitionOptions(def: { defaults: JobsOptions }, retention: Retention, extra: JobsOptions = {}): JobsOptions {
  return { ...def.defaults, ...retentionOptions(retention), ...extra };
}
