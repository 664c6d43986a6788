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
  return { ...catalogue[kind].defaults, ...retentionOptions(retention), ...extra };
}
