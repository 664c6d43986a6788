// Remote cancellation of running jobs. The gateway marks the job (a key with a TTL, so a worker that
// picks it up later still sees it) and publishes on the channel; each worker process keeps an
// AbortController per running job and aborts the one named. The engine stops at the next block
// boundary and keeps the partial output.
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { cancelChannel, cancelKey } from './keys';

export interface CancelTarget {
  prefix: string;
  queue: string;
  jobId: string;
}

export async function requestCancel(redis: Redis, t: CancelTarget, ttlSeconds = 86400): Promise<void> {
  await redis
    .multi()
    .set(cancelKey(t.prefix, t.queue, t.jobId), '1', 'EX', ttlSeconds)
    .publish(cancelChannel(t.prefix), JSON.stringify({ queue: t.queue, jobId: t.jobId }))
    .exec();
}

/**
 * Cancels a job from the producer's side, the same way for every job kind:
 * - finished (completed or failed): left as it is -> 'finished';
 * - waiting or delayed: `record` is written at `recordKey` (EX `ttlSeconds`) first, so a reader that
 *   finds the job gone finds why, then the job is removed -> 'removed';
 * - active, or turned active between the state read and the removal (the remove then fails on the
 *   worker's lock and the record is deleted again): the running worker is signalled through
 *   requestCancel -> 'signalled'.
 */
export async function cancelJob(
  redis: Redis,
  job: Job,
  opts: { target: CancelTarget; recordKey: string; record: object; ttlSeconds: number },
): Promise<'removed' | 'signalled' | 'finished'> {
  const state = await job.getState();
  if (state === 'completed' || state === 'failed') return 'finished';
  if (state !== 'active') {
    await redis.set(opts.recordKey, JSON.stringify(opts.record), 'EX', Math.max(1, opts.ttlSeconds));
    try {
      await job.remove();
      return 'removed';
    } catch {
      await redis.del(opts.recordKey);
    }
  }
  await requestCancel(redis, opts.target);
  return 'signalled';
}

export async function isCancelRequested(redis: Redis, t: CancelTarget): Promise<boolean> {
  return (await redis.exists(cancelKey(t.prefix, t.queue, t.jobId))) === 1;
}

/** Worker side: one subscriber connection per process, one AbortController per running job. */
export class CancelRegistry {
  private readonly running = new Map<string, AbortController>();
  private started?: Promise<void>;

  /**
   * @param subscriber a dedicated connection (it enters subscriber mode)
   * @param redis a normal connection for the cancel-key check
   */
  constructor(
    private readonly subscriber: Redis,
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  start(): Promise<void> {
    this.started ??= (async () => {
      this.subscriber.on('message', (channel: string, message: string) => {
        if (channel !== cancelChannel(this.prefix)) return;
        try {
          const { queue, jobId } = JSON.parse(message) as { queue: string; jobId: string };
          this.running.get(`${queue}\u0000${jobId}`)?.abort(new Error('cancelled'));
        } catch {
          /* not ours */
        }
      });
      await this.subscriber.subscribe(cancelChannel(this.prefix));
    })();
    return this.started;
  }

  /**
   * Registers a job that starts running; returns its signal (already aborted when the cancel was
   * requested before this call) and a function to call when the job ends.
   */
  async register(queue: string, jobId: string): Promise<{ signal: AbortSignal; done: () => void }> {
    const k = `${queue}\u0000${jobId}`;
    const ac = new AbortController();
    this.running.set(k, ac);
    // The key check comes after registration: a cancel published in between is seen either way.
    if (await isCancelRequested(this.redis, { prefix: this.prefix, queue, jobId })) ac.abort(new Error('cancelled'));
    return {
      signal: ac.signal,
      done: () => {
        if (this.running.get(k) === ac) this.running.delete(k);
      },
    };
  }

  get size(): number {
    return this.running.size;
  }

  async close(): Promise<void> {
    if (this.started) await this.subscriber.unsubscribe(cancelChannel(this.prefix)).catch(() => undefined);
  }
}
