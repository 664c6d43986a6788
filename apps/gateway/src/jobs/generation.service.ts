// Enqueues generation jobs and waits for / streams their results. The only place in the gateway
// that touches BullMQ queues; everything job-shaped comes from the catalogue in @dllm/contracts.
import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { Job, Queue, type JobsOptions } from 'bullmq';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { ENGINE_TO_WIRE, JOB_KINDS, queueName, resolveRequest, workOf, type RequestIssue } from '@dllm/contracts';
import { PendingWorkEstimator, type QueueRegistry } from '@dllm/queue';
import { ApiError, fromZodError } from '../http/api-error';
import { MetricsService } from '../metrics/metrics.service';
import { QUEUES, REDIS, SETTINGS } from '../tokens';
import type { GatewaySettings } from '../settings';
import { gatewayResultStore } from '../storage';
import { JobWatcher } from './job-watcher';
import { ModelFactsService } from './model-facts';
import {
  GenerationPayload,
  GenerationResult,
  ProgressEvent,
  generationJob,
  generationQueueName,
  readGenerationResult,
  requestCancel,
  cancelJob,
  settledSnapshot,
  parseProgress,
  validateGenerationPayload,
} from './catalogue-bridge';
import type { BlobStore } from '@dllm/storage';

export type Endpoint = GenerationPayload['endpoint'];

export interface SubmitInput {
  owner: string;
  model: string;
  prompt: string;
  options: Record<string, unknown>;
  endpoint: Endpoint;
  stream: boolean;
  batch?: GenerationPayload['batch'];
  jobId?: string;
}

export interface WaitOptions {
  onProgress?: (p: ProgressEvent) => void;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface JobView {
  id: string;
  object: 'job';
  kind: 'generation';
  model: string;
  status: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
  state: string;
  created_at: number;
  /** Millisecond timestamps: enqueued, taken by a worker, finished (null until then). */
  timings: { enqueued_ms: number; started_ms: number | null; finished_ms: number | null };
  progress: unknown;
  attempts: number;
  failed_reason: string | null;
  result: GenerationResult | null;
}

/** What stays of a job cancelled while it was queued (BullMQ removed it): kept for the retention period. */
export interface CancelledJob {
  owner: string;
  model: string;
  /** Enqueue and cancel times, ms since the epoch. */
  enqueuedMs: number;
  cancelledMs: number;
}

/** A job found by id for its owner: the BullMQ job, or the record of its cancellation while queued. */
export type FoundJob = { model: string; job: Job<GenerationPayload>; cancelled?: undefined } | { model: string; job?: undefined; cancelled: CancelledJob };

@Injectable()
export class GenerationService implements OnModuleDestroy {
  private readonly logger = new Logger('Generation');
  private readonly watchers = new Map<string, JobWatcher>();
  private readonly watcherReady = new Map<string, Promise<void>>();
  /**
   * Every finished job of every queue this gateway watches, as 'finished' events
   * (listener: (jobId, { returnvalue?, failedReason? }) => void). Batch accounting subscribes here.
   */
  readonly events = new EventEmitter<{ finished: [jobId: string, outcome: JobOutcome] }>();

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
    private readonly metrics: MetricsService,
    private readonly facts: ModelFactsService,
    @Inject(QUEUES) private readonly queues: QueueRegistry,
  ) {
    metrics.setDepthSource({ depths: () => this.depths() });
    metrics.setPendingWork(new PendingWorkEstimator(() => this.farmQueues()));
    this.results = gatewayResultStore(redis, settings);
  }

  /** The shared result store (job results by reference). */
  readonly results: BlobStore;

  models(): { name: string; queue: string; dir?: string }[] {
    return this.settings.models.map((m) => ({ ...m, queue: generationQueueName(m.name) }));
  }

  checkModel(model: string): void {
    if (!this.settings.models.some((m) => m.name === model)) {
      const known = this.settings.models.map((m) => m.name).join(', ');
      throw new ApiError(404, `The model '${model}' does not exist. Available: ${known}.`, 'model_not_found', 'model');
    }
  }

  /** The model's generation queue (owned by the process's QueueRegistry). */
  queue(model: string): Queue {
    this.checkModel(model);
    return this.queues.get('generation', model);
  }

  /** The shared QueueEvents of a model's queue; resolves once it is listening. */
  async watcher(model: string): Promise<JobWatcher> {
    this.checkModel(model);
    let w = this.watchers.get(model);
    if (!w) {
      w = new JobWatcher(generationQueueName(model), { ...this.redis.options, maxRetriesPerRequest: null } as never, this.settings.queuePrefix);
      w.onFinished = (id, o) => this.events.emit('finished', id, o);
      this.watchers.set(model, w);
      this.watcherReady.set(model, w.ready());
    }
    await this.watcherReady.get(model);
    return w;
  }

  /** The registry's one job-options policy: catalogue defaults + retention by count and age (config). */
  jobOptions(jobId: string): JobsOptions {
    return this.queues.jobOptions('generation', { jobId });
  }

  /**
   * Builds and validates the payload without enqueueing: the catalogue's schema, then the shared
   * request resolver (@dllm/contracts resolveRequest) with the model's facts, so everything the
   * engine would refuse is a 400/422 here. Throws ApiError (404 unknown model, 400 prompt, 422 options).
   */
  payload(input: SubmitInput): GenerationPayload {
    this.checkModel(input.model);
    const candidate = {
      owner: input.owner,
      model: input.model,
      prompt: input.prompt,
      options: input.options,
      stream: input.stream,
      endpoint: input.endpoint,
      createdAt: Date.now(),
      work: workOf(input.options, 1),
      ...(input.batch ? { batch: input.batch } : {}),
    };
    const r = validateGenerationPayload(candidate);
    if (!r.success) throw fromZodError(r.error, wireName);
    const verdict = resolveRequest(this.facts.get(input.model), { prompt: input.prompt, options: input.options });
    if (!verdict.ok) throw requestError(verdict.errors, input.endpoint);
    return r.data;
  }

  async submit(input: SubmitInput): Promise<{ jobId: string; payload: GenerationPayload }> {
    const payload = this.payload(input);
    const jobId = input.jobId ?? `gen-${randomUUID()}`;
    await this.queue(input.model).add(generationJob.name, payload, this.jobOptions(jobId));
    this.metrics.jobsEnqueued.inc({ endpoint: input.endpoint });
    return { jobId, payload };
  }

  /** Adds many jobs in one round trip per chunk (batches). */
  async submitBulk(model: string, jobs: { jobId: string; payload: GenerationPayload }[]): Promise<void> {
    const q = this.queue(model);
    await q.addBulk(jobs.map((j) => ({ name: generationJob.name, data: j.payload, opts: this.jobOptions(j.jobId) })));
    this.metrics.jobsEnqueued.inc({ endpoint: 'batch' }, jobs.length);
  }

  /** Submits and waits: registers the listener before the job exists so no event is missed. */
  async run(input: SubmitInput, opts: WaitOptions = {}): Promise<{ jobId: string; result: GenerationResult }> {
    const jobId = input.jobId ?? `gen-${randomUUID()}`;
    const payload = this.payload(input); // validate before touching Redis
    const w = await this.watcher(input.model);
    const started = Date.now();
    const waiting = this.waitFor(w, input.model, jobId, opts);
    try {
      await this.queue(input.model).add(generationJob.name, payload, this.jobOptions(jobId));
    } catch (e) {
      waiting.cancelWait();
      throw e;
    }
    this.metrics.jobsEnqueued.inc({ endpoint: input.endpoint });
    const result = await waiting.promise;
    this.metrics.observeResult(input.model, input.endpoint, {
      promptTokens: result.usage.promptTokens,
      completionTokens: result.usage.completionTokens,
      forwards: result.stats.forwards,
      tpf: result.stats.tpf,
      latencyMs: Date.now() - started,
    });
    return { jobId, result };
  }

  private waitFor(w: JobWatcher, model: string, jobId: string, opts: WaitOptions) {
    let off = () => {};
    let timer: NodeJS.Timeout | undefined;
    let poll: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const cleanup = () => {
      off();
      if (timer) clearTimeout(timer);
      if (poll) clearInterval(poll);
      if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
    };
    const promise = new Promise<GenerationResult>((resolve, reject) => {
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        cleanup();
        fn();
      };
      const complete = (rv: unknown) => {
        readGenerationResult(this.results, jobId, rv).then(
          (r) => finish(() => resolve(r)),
          (e: Error) => finish(() => reject(new ApiError(500, `Result of job ${jobId} unreadable: ${e.message}`, 'result_unavailable'))),
        );
      };
      off = w.listen(jobId, {
        progress: (d) => {
          const p = parseProgress(d);
          if (p && opts.onProgress) opts.onProgress(p);
        },
        completed: (rv) => complete(rv),
        failed: (reason) => finish(() => reject(new ApiError(500, `Generation failed: ${reason}`, 'generation_failed'))),
        removed: () => void this.gone(jobId).then((e) => finish(() => reject(e))),
      });
      if (opts.timeoutMs) {
        timer = setTimeout(() => {
          void this.cancel(model, jobId);
          finish(() => reject(new ApiError(504, `No result within ${opts.timeoutMs} ms; the job was cancelled.`, 'timeout')));
        }, opts.timeoutMs);
      }
      // Safety net for events lost across a Redis reconnect: look at the job now and then.
      poll = setInterval(() => {
        void Job.fromId(this.queue(model), jobId).then(
          async (read) => {
            if (done) return;
            if (!read) {
              const e = await this.gone(jobId);
              finish(() => reject(e));
              return;
            }
            const { job, state } = await settledSnapshot(this.queue(model), read);
            if (state === 'completed') complete(job.returnvalue);
            else if (state === 'failed' && job.attemptsMade >= (job.opts.attempts ?? 1)) {
              finish(() => reject(new ApiError(500, `Generation failed: ${job.failedReason}`, 'generation_failed')));
            }
          },
          () => {},
        );
      }, 5000);
      poll.unref();
      if (opts.signal) {
        onAbort = () => {
          void this.cancel(model, jobId);
        };
        opts.signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    return { promise, cancelWait: cleanup };
  }

  /** Why a job that was waited for is no longer in its queue: cancelled while queued (409), or lost (503). */
  async gone(jobId: string): Promise<ApiError> {
    if (await this.cancelledRecord(jobId).catch(() => undefined)) return new ApiError(409, `Job ${jobId} was cancelled before it started.`, 'job_cancelled');
    const message = `Job ${jobId} disappeared from its queue (Redis lost it or it was trimmed); submit it again.`;
    return new ApiError(503, message, 'job_lost', null, { 'retry-after': '1' });
  }

  /** Job with owner check: another key's job is a 404, like a missing one (a cancelled queued job is a 409 here). */
  async getJob(owner: string, jobId: string): Promise<{ job: Job<GenerationPayload>; model: string }> {
    const found = await this.find(owner, jobId);
    if (found.cancelled) throw new ApiError(409, `Job ${jobId} was cancelled before it started.`, 'job_cancelled');
    return found;
  }

  /** The job or, for one cancelled while queued, its cancellation record; 404 for a missing or foreign one. */
  async find(owner: string, jobId: string): Promise<FoundJob> {
    for (const m of this.settings.models) {
      const job = (await Job.fromId(this.queue(m.name), jobId)) as Job<GenerationPayload> | undefined;
      if (job) {
        if (job.data?.owner !== owner) break;
        return { job, model: m.name };
      }
    }
    const cancelled = await this.cancelledRecord(jobId);
    if (cancelled && cancelled.owner === owner) return { model: cancelled.model, cancelled };
    throw ApiError.notFound('job', jobId);
  }

  private cancelledKey(jobId: string): string {
    return `${this.settings.keyPrefix}job-cancelled:${jobId}`;
  }

  /** The record of a job cancelled while queued, or undefined. */
  async cancelledRecord(jobId: string): Promise<CancelledJob | undefined> {
    const raw = await this.redis.get(this.cancelledKey(jobId));
    return raw ? (JSON.parse(raw) as CancelledJob) : undefined;
  }

  async view(owner: string, jobId: string): Promise<JobView> {
    const found = await this.find(owner, jobId);
    const model = found.model;
    if (found.cancelled) {
      const c = found.cancelled;
      return {
        id: jobId,
        object: 'job',
        kind: 'generation',
        model,
        status: 'cancelled',
        state: 'removed',
        created_at: Math.floor(c.enqueuedMs / 1000),
        timings: { enqueued_ms: c.enqueuedMs, started_ms: null, finished_ms: c.cancelledMs },
        progress: null,
        attempts: 0,
        failed_reason: null,
        result: null,
      };
    }
    const { job, state } = await settledSnapshot(this.queue(model), found.job);
    let result: GenerationResult | null = null;
    if (state === 'completed') result = await readGenerationResult(this.results, jobId, job.returnvalue).catch(() => null);
    const status: JobView['status'] =
      state === 'completed'
        ? result?.finishReason === 'cancelled'
          ? 'cancelled'
          : 'completed'
        : state === 'failed'
          ? 'failed'
          : state === 'active'
            ? 'running'
            : 'queued';
    return {
      id: jobId,
      object: 'job',
      kind: 'generation',
      model,
      status,
      state,
      created_at: Math.floor(job.timestamp / 1000),
      timings: { enqueued_ms: job.timestamp, started_ms: job.processedOn ?? null, finished_ms: job.finishedOn ?? null },
      progress: job.progress ?? null,
      attempts: job.attemptsMade,
      failed_reason: job.failedReason ?? null,
      result,
    };
  }

  /**
   * Cancels a job: a waiting one is removed and a record of it kept for the completed-job retention
   * (GET shows it as `cancelled`, its event streams end with a `cancelled` event); an active one is
   * signalled (the worker stops at the next block boundary and keeps the partial output).
   */
  async cancel(model: string, jobId: string): Promise<'removed' | 'signalled' | 'finished' | 'missing'> {
    const q = this.queue(model);
    const job = (await Job.fromId(q, jobId)) as Job<GenerationPayload> | undefined;
    if (!job) return (await this.cancelledRecord(jobId)) ? 'finished' : 'missing';
    const record: CancelledJob = { owner: job.data?.owner ?? '', model, enqueuedMs: job.timestamp, cancelledMs: Date.now() };
    return cancelJob(this.redis, job, {
      target: { prefix: this.settings.queuePrefix, queue: generationQueueName(model), jobId },
      recordKey: this.cancelledKey(jobId),
      record,
      ttlSeconds: this.settings.jobRetention?.completed.ageSeconds ?? 3600,
    });
  }

  /** Asks the worker running the job to stop at its next block boundary. */
  signalCancel(queue: string, jobId: string): Promise<void> {
    return requestCancel(this.redis, { prefix: this.settings.queuePrefix, queue, jobId });
  }

  readResult(jobId: string, returnvalue: unknown): Promise<GenerationResult> {
    return readGenerationResult(this.results, jobId, returnvalue);
  }

  /** Every queue of every served model (generation, rollout, distill), for the metrics. */
  farmQueues(): { queue: Queue; model: string; measuresTpf: boolean }[] {
    return this.settings.models.flatMap((m) =>
      JOB_KINDS.map((kind) => {
        return { queue: this.queues.get(kind, m.name), model: m.name, measuresTpf: kind === 'generation' };
      }),
    );
  }

  async depths(): Promise<Record<string, Record<string, number>>> {
    const out: Record<string, Record<string, number>> = {};
    for (const { queue } of this.farmQueues()) {
      out[queue.name] = await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed');
    }
    return out;
  }

  async onModuleDestroy(): Promise<void> {
    // Closing BullMQ objects waits for Redis; while it is away, give up after a moment (the process is stopping).
    const within = (p: Promise<unknown>) => Promise.race([p, new Promise((r) => setTimeout(r, this.redis.status === 'ready' ? 5000 : 500).unref())]);
    await within(Promise.allSettled([...this.watchers.values()].map((w) => w.close())));
    // The queues belong to the QueueRegistry, closed by GatewayModule on shutdown.
  }
}

export type JobOutcome = { returnvalue?: unknown; failedReason?: string };

/**
 * Resolver issues -> one ApiError: the first issue's status, code and param; every issue in the
 * message. Params are named as the route's client sent them: OpenAI routes get wire names
 * (block_size; messages for a chat prompt), the native job API keeps `options.blockSize`.
 */
export function requestError(errors: readonly RequestIssue[], endpoint: Endpoint): ApiError {
  const param = (p: string) => (endpoint === 'native' ? p : p === 'prompt' && endpoint === 'chat.completions' ? 'messages' : wireName(p));
  const first = errors[0];
  const text = errors
    .slice(0, 5)
    .map((e) => `${param(e.param)}: ${e.message}`)
    .join('; ');
  const more = errors.length > 5 ? ` (and ${errors.length - 5} more)` : '';
  return new ApiError(first.status, `Invalid request: ${text}${more}`, first.code, param(first.param));
}

/** Engine option path (options.blockSize) -> the wire field the client sent (block_size). */
export function wireName(path: string): string {
  const m = /^options\.([A-Za-z]+)(.*)$/.exec(path);
  return m ? (Object.hasOwn(ENGINE_TO_WIRE, m[1]) ? ENGINE_TO_WIRE[m[1]] : m[1]) + m[2] : path;
}
