// Distillation in the gateway: validate, store the request, enqueue one job in the model's
// distill queue; status with progress; dataset files served from the store; cancel (a queued job is
// removed and a record of it kept, a running one is signalled and stops at its next chunk).
import { Inject, Injectable } from '@nestjs/common';
import type { Job, Queue } from 'bullmq';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Redis } from 'ioredis';
import {
  DISTILL_CANCELLED,
  queueName,
  resolveDistillRequest,
  workOf,
  distillBlobKey,
  distillJob,
  distillProgressSchema,
  distillRequestSchema,
  distillReturnSchema,
  type DistillPayload,
  type DistillRequest,
  type DistillReturn,
} from '@dllm/contracts';
import { cancelJob, isCancelRequested, settledSnapshot, type QueueRegistry } from '@dllm/queue';
import type { BlobStore } from '@dllm/storage';
import { ApiError, fromZodError } from '../http/api-error';
import { GenerationService, requestError } from '../jobs/generation.service';
import { ModelFactsService } from '../jobs/model-facts';
import type { GatewaySettings } from '../settings';
import { gatewayResultStore } from '../storage';
import { QUEUES, REDIS, SETTINGS } from '../tokens';

/** What stays of a distillation cancelled while queued (its job was removed): kept for the result retention. */
interface CancelledDistill {
  owner: string;
  model: string;
  total: number;
  /** Submit and cancel times, ms since the epoch. */
  createdAt: number;
  cancelledMs: number;
}

/** A distillation found for its owner: its BullMQ job, or the record of its cancellation while queued. */
type FoundDistill = { job: Job; cancelled?: undefined } | { job?: undefined; cancelled: CancelledDistill };

export interface DistillView {
  id: string;
  object: 'distillation';
  model: string;
  /** cancelling: cancel requested, the running job stops at its next chunk; cancelled: stopped (or removed while queued), no dataset. */
  status: 'queued' | 'running' | 'completed' | 'failed' | 'cancelling' | 'cancelled';
  created_at: number;
  progress: { done: number; total: number; kept: number };
  failed_reason: string | null;
  result: (Omit<DistillReturn, 'files'> & { files: string[] }) | null;
}

@Injectable()
export class DistillService {
  private readonly blobs: BlobStore;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
    private readonly gen: GenerationService,
    @Inject(QUEUES) private readonly queues: QueueRegistry,
    private readonly facts: ModelFactsService,
  ) {
    this.blobs = gatewayResultStore(redis, settings);
  }

  private queue(model: string): Queue {
    return this.queues.get('distill', model);
  }

  /**
   * 422 with every schema reason; 404 for an unknown model; then the shared request resolver against
   * the model's facts: 400 for an inline question the model cannot take (`questions.<i>.prompt`:
   * empty, too many tokens for its positions), 422 for teacher options it cannot honour
   * (`decoding.blockSize`, `decoding.policy`, `decoding.stopTokenIds.<i>`).
   */
  parse(raw: unknown): DistillRequest {
    const r = distillRequestSchema.safeParse(raw);
    if (!r.success) throw fromZodError(r.error);
    this.gen.checkModel(r.data.model);
    const issues = resolveDistillRequest(this.facts.get(r.data.model), r.data);
    if (issues.length) throw requestError(issues, 'native');
    return r.data;
  }

  /** Stores the request and enqueues its job; returns the new id and the number of questions. */
  async submit(owner: string, req: DistillRequest): Promise<{ id: string; total: number }> {
    const id = `ds-${randomUUID()}`;
    const requestKey = distillBlobKey(id, 'request.json');
    await this.blobs.put(requestKey, JSON.stringify(req));
    const total = (req.tasks ?? []).reduce((a, t) => a + t.n, 0) + (req.questions?.length ?? 0);
    const payload: DistillPayload = distillJob.parsePayload({
      distillId: id,
      owner,
      model: req.model,
      requestKey,
      total,
      createdAt: Date.now(),
      work: workOf(req.decoding, total),
    });
    await this.queue(req.model).add(
      distillJob.name,
      payload,
      this.queues.jobOptions('distill', { removeOnComplete: { age: this.retentionSeconds() }, jobId: id }),
    );
    return { id, total };
  }

  /** The owner's job, or the record of its cancellation while queued; 404 for a missing or another key's id. */
  private async find(owner: string, id: string): Promise<FoundDistill> {
    if (!/^ds-[0-9a-f-]{36}$/.test(id)) throw ApiError.notFound('distillation', id.slice(0, 128));
    for (const m of this.settings.models) {
      const job = await this.queue(m.name).getJob(id);
      if (job && (job.data as DistillPayload).owner === owner) return { job };
    }
    const raw = await this.redis.get(this.cancelledKey(id));
    const cancelled = raw ? (JSON.parse(raw) as CancelledDistill) : undefined;
    if (cancelled && cancelled.owner === owner) return { cancelled };
    throw ApiError.notFound('distillation', id);
  }

  private async job(owner: string, id: string): Promise<Job> {
    const found = await this.find(owner, id);
    if (!found.job) throw new ApiError(409, `Distillation ${id} was cancelled before it started.`, 'distill_cancelled');
    return found.job;
  }

  private cancelledKey(id: string): string {
    return `${this.settings.keyPrefix}distill-cancelled:${id}`;
  }

  /** Status, progress and (once completed) the result with its file names; 404 for a missing or another key's id. */
  async view(owner: string, id: string): Promise<DistillView> {
    const found = await this.find(owner, id);
    if (found.cancelled) {
      const c = found.cancelled;
      return {
        id,
        object: 'distillation',
        model: c.model,
        status: 'cancelled',
        created_at: Math.floor(c.createdAt / 1000),
        progress: { done: 0, total: c.total, kept: 0 },
        failed_reason: null,
        result: null,
      };
    }
    const payload = found.job.data as DistillPayload;
    const { job, state: st } = await settledSnapshot(this.queue(payload.model), found.job);
    const prog = distillProgressSchema.safeParse(job.progress);
    const ret = st === 'completed' ? distillReturnSchema.safeParse(job.returnvalue) : null;
    const result: DistillReturn | null = ret?.success ? ret.data : null;
    // a running job stopped by a cancel fails for good with DISTILL_CANCELLED: that is `cancelled`, not an error
    const cancelled = st === 'failed' && job.failedReason === DISTILL_CANCELLED;
    const cancelling =
      st === 'active' && (await isCancelRequested(this.redis, { prefix: this.settings.queuePrefix, queue: queueName('distill', payload.model), jobId: id }));
    let status: DistillView['status'] = st === 'completed' ? 'completed' : st === 'failed' ? 'failed' : st === 'active' ? 'running' : 'queued';
    if (cancelled) status = 'cancelled';
    else if (cancelling) status = 'cancelling';
    return {
      id,
      object: 'distillation',
      model: payload.model,
      status,
      created_at: Math.floor(payload.createdAt / 1000),
      progress: prog.success ? prog.data : { done: 0, total: payload.total, kept: 0 },
      failed_reason: cancelled ? null : (job.failedReason ?? null),
      result: result ? { ...result, files: Object.keys(result.files) } : null,
    };
  }

  /**
   * Cancels a distillation: a queued one is removed (no worker runs it) and a record of it kept for
   * the result retention; a running one is signalled and stops at its next chunk (its job fails
   * with DISTILL_CANCELLED, without retries, and no dataset is written). Returns the view (status
   * `cancelled`, or `cancelling` until the running job stopped). Idempotent; a finished
   * distillation is returned unchanged; 404 for a missing or another key's id.
   */
  async cancel(owner: string, id: string): Promise<DistillView> {
    const found = await this.find(owner, id);
    if (found.cancelled) return this.view(owner, id);
    const payload = found.job.data as DistillPayload;
    const record: CancelledDistill = { owner, model: payload.model, total: payload.total, createdAt: payload.createdAt, cancelledMs: Date.now() };
    await cancelJob(this.redis, found.job, {
      target: { prefix: this.settings.queuePrefix, queue: queueName('distill', payload.model), jobId: id },
      recordKey: this.cancelledKey(id),
      record,
      ttlSeconds: this.retentionSeconds(),
    });
    return this.view(owner, id);
  }

  private retentionSeconds(): number {
    return Math.max(1, this.settings.resultStore?.resultTtlSeconds || 86_400);
  }

  /** A dataset file of a completed distillation (409 before, 410 once expired). */
  async file(owner: string, id: string, name: string): Promise<{ stream: Readable | null; buf: Buffer | null }> {
    const job = await this.job(owner, id);
    const ret = distillReturnSchema.safeParse(job.returnvalue);
    if (!ret.success) throw new ApiError(409, `Distillation ${id} has not completed.`, 'distill_not_finished');
    // A Map, not `files[name]`: 'constructor', '__proto__', 'toString' are names, not Object.prototype.
    const key = new Map(Object.entries(ret.data.files)).get(name);
    if (!key) throw ApiError.notFound('dataset file', name.slice(0, 128));
    const stream = this.blobs.getStream ? await this.blobs.getStream(key) : null;
    const buf = stream ? null : await this.blobs.get(key);
    if (!stream && !buf) throw new ApiError(410, `File ${name} of ${id} has expired.`, 'expired');
    return { stream, buf };
  }
}
