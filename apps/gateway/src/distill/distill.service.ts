// Distillation in the gateway: validate, store the request, enqueue one job in the model's
// distill queue; status with progress; dataset files served from the store.
import { Inject, Injectable } from '@nestjs/common';
import type { Job, Queue } from 'bullmq';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Redis } from 'ioredis';
import {
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
import { settledSnapshot, type QueueRegistry } from '@dllm/queue';
import type { BlobStore } from '@dllm/storage';
import { ApiError, fromZodError } from '../http/api-error';
import { GenerationService, requestError } from '../jobs/generation.service';
import { ModelFactsService } from '../jobs/model-facts';
import type { GatewaySettings } from '../settings';
import { gatewayResultStore } from '../storage';
import { QUEUES, REDIS, SETTINGS } from '../tokens';

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
    const ttl = this.settings.resultStore?.resultTtlSeconds || 86_400;
    await this.queue(req.model).add(distillJob.name, payload, this.queues.jobOptions('distill', { removeOnComplete: { age: ttl }, jobId: id }));
    return { id, total };
  }

  private async job(owner: string, id: string): Promise<Job> {
    if (!/^ds-[0-9a-f-]{36}$/.test(id)) throw ApiError.notFound('distillation', id.slice(0, 128));
    for (const m of this.settings.models) {
      const job = await this.queue(m.name).getJob(id);
      if (job && (job.data as DistillPayload).owner === owner) return job;
    }
    throw ApiError.notFound('distillation', id);
  }

  async view(owner: string, id: string) {
    const found = await this.job(owner, id);
    const payload = found.data as DistillPayload;
    const { job, state: st } = await settledSnapshot(this.queue(payload.model), found);
    const prog = distillProgressSchema.safeParse(job.progress);
    const ret = st === 'completed' ? distillReturnSchema.safeParse(job.returnvalue) : null;
    const result: DistillReturn | null = ret?.success ? ret.data : null;
    return {
      id,
      object: 'distillation',
      model: payload.model,
      status: st === 'completed' ? 'completed' : st === 'failed' ? 'failed' : st === 'active' ? 'running' : 'queued',
      created_at: Math.floor(payload.createdAt / 1000),
      progress: prog.success ? prog.data : { done: 0, total: payload.total, kept: 0 },
      failed_reason: job.failedReason ?? null,
      result: result ? { ...result, files: Object.keys(result.files) } : null,
    };
  }

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
