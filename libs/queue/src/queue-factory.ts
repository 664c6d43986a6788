// Queues of a deployment: one owner per process (QueueRegistry) that knows the prefix, the
// connection and the job-options policy, so every producer and reader of a queue shares one Queue
// object and every job is added with the same defaults (BullMQ's advice: reuse Queue instances).
import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { queueName, type JobKind, type QueueKind } from '@dllm/contracts';
import { jobOptions, type Retention } from './options';

/** Retention when config gives none: completed jobs 1 h / 10k, failed 24 h / 10k. */
export const DEFAULT_RETENTION: Retention = { completed: { count: 10_000, ageSeconds: 3600 }, failed: { count: 10_000, ageSeconds: 86_400 } };

export interface QueueRegistryOptions {
  /** An ioredis client (shared by every Queue) or options BullMQ makes its own clients from. */
  connection: ConnectionOptions;
  /** QUEUE_PREFIX. */
  prefix: string;
  /** RETENTION_* (completed / failed jobs kept by count and age). */
  retention?: Retention;
  /** Queue errors (a lost connection); default: ignored (the connection reporter says it once). */
  onError?: (queue: string, e: Error) => void;
}

/**
 * The one owner of this process's BullMQ Queue objects: `get(kind, model)` returns the same Queue
 * for the same queue every time; `jobOptions(kind, extra)` is the single job-options policy
 * (the catalogue's attempts/backoff, then retention, then per-call `extra` such as jobId).
 */
export class QueueRegistry {
  private readonly queues = new Map<string, Queue>();

  constructor(private readonly o: QueueRegistryOptions) {}

  /** The Queue of `kind` for `model` (created on first use). */
  get(kind: QueueKind, model?: string): Queue {
    const name = queueName(kind, model);
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.o.connection, prefix: this.o.prefix });
      q.on('error', (e) => this.o.onError?.(name, e));
      this.queues.set(name, q);
    }
    return q;
  }

  /** Options for adding a job of `kind`: catalogue defaults, retention, then `extra` (jobId, overrides). */
  jobOptions(kind: JobKind, extra: JobsOptions = {}): JobsOptions {
    return jobOptions(kind, this.o.retention ?? DEFAULT_RETENTION, extra);
  }

  /** Every Queue made so far. */
  all(): Queue[] {
    return [...this.queues.values()];
  }

  /**
   * Closes every Queue; gives up after `timeoutMs` (closing waits for Redis, which may be away while
   * the process stops).
   */
  async close(timeoutMs = 5000): Promise<void> {
    const all = Promise.allSettled(this.all().map((q) => q.close()));
    await Promise.race([all, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }
}

/** Removes a queue and everything in it (tests, demos): waits, drains, obliterates, closes. */
export async function destroyQueue(q: Queue): Promise<void> {
  try {
    await q.obliterate({ force: true });
  } finally {
    await q.close();
  }
}
