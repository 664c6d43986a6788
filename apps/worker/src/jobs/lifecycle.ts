// Start paused, resume when ready; drain on shutdown.
//  - boot: check the handlers (one per job kind), load the model, then start every BullMQ worker
//    (they are created with autorun: false, so no job is taken before the model is loaded);
//  - shutdown (SIGTERM): stop taking jobs, let active ones finish for WORKER_DRAIN_TIMEOUT_MS, then
//    abort the rest and hand them back to the queue (moveToWait) for another worker. Every job kind
//    gets its stop signal from register() (cancel + hand-back in one) and every processor is a
//    JobHost (which does the moveToWait), so no kind can miss the hand-back.
import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { WorkerHost } from '@nestjs/bullmq';
import type { Worker } from 'bullmq';
import { JOB_KINDS } from '@dllm/contracts';
import type { Config } from '@dllm/config';
import { CancelRegistry } from '@dllm/queue';
import { EngineHolder } from '../core/engine-holder';
import { CONFIG } from '../core/tokens';
import { checkHandlers, HandlerSetupError, JOB_HANDLER } from './job-handler';
import { JobHost, type JobStop } from './job-stop';

@Injectable()
export class WorkerLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Worker');
  private readonly handBack = new AbortController();
  private workers: Worker[] = [];
  /** Resolves once every worker is running (or rejects when the model failed to load). */
  started?: Promise<void>;
  draining = false;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly engine: EngineHolder,
    private readonly cancels: CancelRegistry,
    @Inject(CONFIG) private readonly config: Config,
  ) {}

  /**
   * Registers a job that starts running: its signal aborts on a cancel of this job or at the drain
   * timeout; `handedBack()` tells the two apart (a runner that stopped for the hand-back throws
   * HandBackError). Call `done()` when the job ends.
   */
  async register(queue: string, jobId: string): Promise<JobStop> {
    const { signal: cancelled, done } = await this.cancels.register(queue, jobId);
    const handBack = this.handBack.signal;
    return {
      signal: AbortSignal.any([cancelled, handBack]),
      handedBack: () => handBack.aborted && !cancelled.aborted,
      done,
    };
  }

  /** Whether every BullMQ worker is running (taking jobs). */
  get running(): boolean {
    return this.workers.length > 0 && this.workers.every((w) => w.isRunning());
  }

  onApplicationBootstrap(): void {
    const hosts = this.discovery
      .getProviders()
      .filter((w) => w.instance instanceof WorkerHost && w.metatype && Reflect.getMetadata(JOB_HANDLER, w.instance.constructor))
      .map((w) => ({
        kind: Reflect.getMetadata(JOB_HANDLER, w.instance.constructor) as string,
        name: w.instance.constructor.name,
        host: w.instance as WorkerHost,
      }));
    checkHandlers(JOB_KINDS, hosts);
    // the hand-back at the drain timeout is JobHost's: a processor without it would run on past
    // the drain until the watchdog kills the process with the engine busy
    const bare = hosts.filter((h) => !(h.host instanceof JobHost)).map((h) => `${h.name} ('${h.kind}')`);
    if (bare.length) throw new HandlerSetupError(`worker setup: ${bare.join(', ')} must extend JobHost (hand-back on shutdown)`);
    this.workers = hosts.map((h) => h.host.worker);
    this.started = this.engine.load().then(() => {
      if (this.draining) return;
      for (const w of this.workers) {
        w.run().catch((e: Error) => this.logger.error(`worker ${w.name} stopped: ${e.message}`));
        this.logger.log(`taking jobs from ${w.name} (concurrency ${w.opts.concurrency})`);
      }
    });
    this.started.catch(() => undefined);
  }

  /** Stops taking jobs; after WORKER_DRAIN_TIMEOUT_MS aborts the hand-back signal; resolves once every job has ended. */
  async beforeApplicationShutdown(signal?: string): Promise<void> {
    this.draining = true;
    const t = this.config.worker.drainTimeoutMs;
    this.logger.log(`${signal ?? 'shutdown'}: no new jobs; active jobs have ${t} ms to finish`);
    const timer = setTimeout(() => {
      this.logger.warn('drain timeout: handing the remaining jobs back to the queue');
      this.handBack.abort(new Error('worker shutting down'));
    }, t);
    try {
      await Promise.all(this.workers.map((w) => w.close()));
    } finally {
      clearTimeout(timer);
    }
  }
}
