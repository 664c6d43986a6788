// How a running job is told to stop, the same for every job kind: a user's cancel (the job ends as
// its kind defines: partial output, `cancelled`) or the worker's shutdown (at the drain timeout the
// job is handed back to the queue, unchanged, for another worker). Runners get a JobStop from
// WorkerLifecycle.register; a runner that stopped for the hand-back throws HandBackError and the
// JobHost base of every processor moves the BullMQ job back to waiting (no attempt used, not failed).
import { WorkerHost } from '@nestjs/bullmq';
import { WaitingError, type Job } from 'bullmq';

/** The stop signals of one running job. */
export interface JobStop {
  /** Aborted on a cancel or at the drain timeout: what the engine and the runner's loops listen to. */
  signal: AbortSignal;
  /** True when the job was stopped by the worker's shutdown and not by a cancel: it must go back to the queue. */
  handedBack(): boolean;
  /** Call when the job ends (unregisters its cancel). */
  done(): void;
}

/** Registers a job that starts running and returns its stop signals. */
export type RegisterJob = (queue: string, jobId: string) => Promise<JobStop>;

/** Thrown by a runner that stopped because the worker shuts down: the job goes back to the queue. */
export class HandBackError extends Error {
  constructor(what: string) {
    super(`${what}: stopped by the worker's shutdown, handed back to the queue`);
    this.name = 'HandBackError';
  }
}

/** Whether `e` is a hand-back (the job is to be returned to the queue, not failed). */
export function isHandBack(e: unknown): e is HandBackError {
  return e instanceof HandBackError;
}

/**
 * Base class of every job processor (the lifecycle refuses to boot with one that is not): runs
 * `handle` and turns a HandBackError into BullMQ's hand-back, i.e. the job moves back to waiting
 * under this worker's lock and WaitingError tells the worker not to complete or fail it.
 */
export abstract class JobHost extends WorkerHost {
  /** The job kind's work; throws HandBackError when it stopped for the worker's shutdown. */
  protected abstract handle(job: Job, token?: string): Promise<unknown>;

  /** BullMQ's entry point: `handle`, with hand-back. */
  async process(job: Job, token?: string): Promise<unknown> {
    try {
      return await this.handle(job, token);
    } catch (e) {
      if (!isHandBack(e)) throw e;
      await job.moveToWait(token);
      throw new WaitingError();
    }
  }
}
