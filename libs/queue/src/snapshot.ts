import { Job, type JobState, type MinimalQueue } from 'bullmq';

/**
 * A job's state together with a job record that is at least as new as that state.
 *
 * `Job.fromId()` then `job.getState()` is a race: a job that completes between the two calls
 * reads as `completed` while the record read before still has `returnvalue === null`. When the
 * state says the job has finished but the record does not, the record is read again.
 */
export async function settledSnapshot<T = unknown, R = unknown>(queue: MinimalQueue, job: Job<T, R>): Promise<{ job: Job<T, R>; state: JobState | 'unknown' }> {
  const state = await job.getState();
  if ((state === 'completed' || state === 'failed') && job.finishedOn === undefined) {
    const fresh = (await Job.fromId(queue, job.id!)) as Job<T, R> | undefined;
    if (fresh) return { job: fresh, state };
  }
  return { job, state };
}
