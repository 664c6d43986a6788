// Enqueues generation jobs and waits for / streams their results. The only place in the gateway
// that touches BullMQ queues; everything job-shaped comes from the catalogue in @dllm/contracts.
import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { Job, Queue, type JobsOptions } from 'bullmq';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { ENGINE_TO_WIRE, JOB_KINDS, queueName, resolveRequest, workOf, type RequestIssue } from '@dllm/contracts';
import { PendingWorkEstimator } from '@dllm/queue';
import { ApiError, fromZodError } from '../http/api-error';
import { MetricsService } from '../metrics/metrics.service';
import { REDIS, SETTINGS } from '../tokens';
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
  jobOptions,
  readGenerationResult,
  requestCancel,
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

@Injectable()
export class GenerationService implements OnModuleDestroy {
  private readonly logger = new Logger('Generation');
  private readonly queues = new Map<string, Queue>();
  /** rollout / distill queues, only read here (their producers are the rollout and distill services). */
  private readonly metricQueues = new Map<string, Queue>();
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

  queue(model: string): Queue {
    this.checkModel(model);
    let q = this.queues.get(model);
    if (!q) {
      q = new Queue(generationQueueName(model), { connection: this.redis, prefix: this.settings.queuePrefix });
      q.on('error', (e) => this.logger.warn(`queue ${model}: ${e.message}`));
      this.queues.set(model, q);
    }
    return q;
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

  /** Catalogue defaults + retention by count and age (config), so Redis memory stays bounded. */
  jobOptions(jobId: string): JobsOptions {
    const r = this.settings.jobRetention ?? { completed: { count: 10_000, ageSeconds: 3600 }, failed: { count: 10_000, ageSeconds: 86_400 } };
    return jobOptions('generation', r, { jobId });
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
      });
      if (opts.timeoutMs) {
        timer = setTimeout(() => {
          void this.cancel(model, jobId);
          finish(() => reject(new ApiError(504, `No result within ${opts.timeoutMs} ms; the job was cancelled.`, 'timeout')));
        }, opts.timeoutMs);
      }
      // Safety net for events lost across a Redis reconnect: look at the job now and then.
      poll = setInterval(() => {
        void Job.fromId(this.queue(model), jobId).then(async (read) => {
          if (!read || done) return;
          const { job, state } = await settledSnapshot(this.queue(model), read);
          if (state === 'completed') complete(job.returnvalue);
          else if (state === 'failed' && job.attemptsMade >= (job.opts.attempts ?? 1)) {
            finish(() => reject(new ApiError(500, `Generation failed: ${job.failedReason}`, 'generation_failed')));
          }
        }, () => {});
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

  /** Job with owner check: another key's job is a 404, like a missing one. */
  async getJob(owner: string, jobId: string): Promise<{ job: Job<GenerationPayload>; model: string }> {
    for (const m of this.settings.models) {
      const job = (await Job.fromId(this.queue(m.name), jobId)) as Job<GenerationPayload> | undefined;
      if (job) {
        if (job.data?.owner !== owner) break;
        return { job, model: m.name };
      }
    }
    throw ApiError.notFound('job', jobId);
  }

  async view(owner: string, jobId: string): Promise<JobView> {
    const found = await this.getJob(owner, jobId);
    const model = found.model;
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
   * Cancels a job: a waiting one is removed; an active one is signalled (the worker stops at the
   * next block boundary and keeps the partial output). Returns what happened.
   */
  async cancel(model: string, jobId: string): Promise<'removed' | 'signalled' | 'finished' | 'missing'> {
    const q = this.queue(model);
    const job = await Job.fromId(q, jobId);
    if (!job) return 'missing';
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') return 'finished';
    if (state !== 'active') {
      try {
        await job.remove();
        return 'removed';
      } catch {
        // became active (locked) between the two calls: fall through to the signal
      }
    }
    await this.signalCancel(generationQueueName(model), jobId);
    return 'signalled';
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
        if (kind === 'generation') return { queue: this.queue(m.name), model: m.name, measuresTpf: true };
        const name = queueName(kind, m.name);
        let q = this.metricQueues.get(name);
        if (!q) {
          q = new Queue(name, { connection: this.redis, prefix: this.settings.queuePrefix });
          q.on('error', (e) => this.logger.warn(`queue ${name}: ${e.message}`));
          this.metricQueues.set(name, q);
        }
        return { queue: q, model: m.name, measuresTpf: false };
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
    await Promise.allSettled([...this.watchers.values()].map((w) => w.close()));
    await Promise.allSettled([...this.queues.values(), ...this.metricQueues.values()].map((q) => q.close()));
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
  const text = errors.slice(0, 5).map((e) => `${param(e.param)}: ${e.message}`).join('; ');
  const more = errors.length > 5 ? ` (and ${errors.length - 5} more)` : '';
  return new ApiError(first.status, `Invalid request: ${text}${more}`, first.code, param(first.param));
}

/** Engine option path (options.blockSize) -> the wire field the client sent (block_size). */
export function wireName(path: string): string {
  const m = /^options\.([A-Za-z]+)(.*)$/.exec(path);
  return m ? (ENGINE_TO_WIRE[m[1]] ?? m[1]) + m[2] : path;
}
