// One QueueEvents per generation queue, shared by every request in this gateway process: a request
// registers a listener for its job id *before* enqueueing, so no event can be missed, and events
// are dispatched through a Map (no per-request Redis connection, no polling).
import { QueueEvents } from 'bullmq';
import type { ConnectionOptions } from 'bullmq';

export interface JobListener {
  progress?(data: unknown): void;
  completed?(returnvalue: unknown): void;
  failed?(reason: string): void;
  /** The job was removed from the queue (cancelled while queued, or trimmed). */
  removed?(): void;
}

export class JobWatcher {
  private readonly events: QueueEvents;
  private readonly listeners = new Map<string, Set<JobListener>>();
  /** Called for every finished job of the queue (batch accounting), listener or not. */
  onFinished?: (jobId: string, outcome: { returnvalue?: unknown; failedReason?: string }) => void;

  constructor(
    readonly queueName: string,
    connection: ConnectionOptions,
    prefix?: string,
  ) {
    this.events = new QueueEvents(queueName, { connection, prefix, autorun: true });
    this.events.on('progress', ({ jobId, data }) => {
      for (const l of this.listeners.get(jobId) ?? []) l.progress?.(data);
    });
    this.events.on('completed', ({ jobId, returnvalue }) => {
      this.onFinished?.(jobId, { returnvalue });
      for (const l of this.listeners.get(jobId) ?? []) l.completed?.(returnvalue);
    });
    this.events.on('failed', ({ jobId, failedReason }) => {
      this.onFinished?.(jobId, { failedReason });
      for (const l of this.listeners.get(jobId) ?? []) l.failed?.(failedReason);
    });
    this.events.on('removed', ({ jobId }) => {
      for (const l of this.listeners.get(jobId) ?? []) l.removed?.();
    });
    this.events.on('error', () => {
      /* reconnects on its own; missed events are caught by the waiters' state checks */
    });
  }

  ready(): Promise<void> {
    return this.events.waitUntilReady().then(() => undefined);
  }

  listen(jobId: string, l: JobListener): () => void {
    let set = this.listeners.get(jobId);
    if (!set) this.listeners.set(jobId, (set = new Set()));
    set.add(l);
    return () => {
      set!.delete(l);
      if (set!.size === 0) this.listeners.delete(jobId);
    };
  }

  close(): Promise<void> {
    return this.events.close();
  }
}
