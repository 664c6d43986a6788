// RL rollouts in the gateway: validates a request, stores it, and creates the BullMQ flow (parent
// 'aggregate' + the first targetGroups 'group' children) in the model's rollout queue; reads the
// status, the JSONL and the learner's cursor stream. The queues belong to the process's
// QueueRegistry (one owner, one job-options policy); the FlowProducer only adds flows.
import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { FlowProducer, type Job, type Queue } from 'bullmq';
import { randomInt, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  queueName,
  resolveRolloutRequest,
  rolloutGroupJob,
  rolloutGroupJobId,
  rolloutJob,
  rolloutRequestSchema,
  rolloutReturnSchema,
  rolloutStateKeys,
  type RolloutGroupPayload,
  type RolloutPayload,
  type RolloutRequest,
  type RolloutResult,
  workOf,
} from '@dllm/contracts';
import { requestCancel, settledSnapshot, type QueueRegistry } from '@dllm/queue';
import { StreamCursorError, TrajectoryStore, rolloutBlobKeys, type ReadOptions, type StreamPage } from '@dllm/rl';
import { ApiError, fromZodError } from '../http/api-error';
import { GenerationService, requestError } from '../jobs/generation.service';
import { ModelFactsService } from '../jobs/model-facts';
import type { GatewaySettings } from '../settings';
import { gatewayResultStore } from '../storage';
import { QUEUES, REDIS, SETTINGS } from '../tokens';

export interface RolloutView {
  id: string;
  object: 'rollout';
  model: string;
  /** cancelling: cancel was requested and running groups are stopping; cancelled: aggregated after a cancel (result has what finished). */
  status: 'queued' | 'running' | 'completed' | 'failed' | 'cancelling' | 'cancelled';
  created_at: number;
  group_size: number;
  prompts: number;
  target_groups: number;
  progress: { launched: number; finished: number; kept: number; full: boolean };
  failed_reason: string | null;
  result: RolloutResult | null;
}

@Injectable()
export class RolloutService implements OnModuleDestroy {
  private readonly flows: FlowProducer;
  readonly store: TrajectoryStore;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
    private readonly gen: GenerationService,
    private readonly facts: ModelFactsService,
    @Inject(QUEUES) private readonly queues: QueueRegistry,
  ) {
    this.flows = new FlowProducer({ connection: redis, prefix: settings.queuePrefix });
    this.store = new TrajectoryStore(redis, gatewayResultStore(redis, settings), settings.queuePrefix);
  }

  /** The model's rollout queue (owned by the process's QueueRegistry). */
  private queue(model: string): Queue {
    return this.queues.get('rollout', model);
  }

  /**
   * 422 with every reason (G < 2, unknown verifier, missing answers, absurd sizes, greedy
   * sampling...); 404 for an unknown model; then the shared request resolver against the model's
   * facts: 400 for a prompt the model cannot take (`prompts.<i>.prompt`: empty, too many tokens for
   * its positions), 422 for options it cannot honour (`decoding.blockSize`, `decoding.policy`,
   * `decoding.stopTokenIds.<i>`, `sampling.<key>`).
   */
  parse(raw: unknown): RolloutRequest {
    const r = rolloutRequestSchema.safeParse(raw);
    if (!r.success) throw fromZodError(r.error);
    this.gen.checkModel(r.data.model);
    const issues = resolveRolloutRequest(this.facts.get(r.data.model), r.data);
    if (issues.length) throw requestError(issues, 'native');
    return r.data;
  }

  /**
   * Stores the request and creates the flow. An omitted sampling.seed is drawn here, once per
   * request (uniform in [0, 2^32)), and stored with the request: every group derives its seeds from
   * it, and the result reports it (`seed`, `seedDrawn`).
   */
  async submit(owner: string, body: RolloutRequest): Promise<{ id: string; targetGroups: number }> {
    const id = `ro-${randomUUID()}`;
    const requestKey = rolloutBlobKeys.request(id);
    const seedDrawn = body.sampling.seed === undefined;
    const req: RolloutRequest = seedDrawn ? { ...body, sampling: { ...body.sampling, seed: randomInt(0, 2 ** 32) } } : body;
    await this.store.putJson(requestKey, req);
    const total = req.prompts.length;
    const target = req.targetGroups ?? total;
    const keys = rolloutStateKeys(this.settings.queuePrefix, id);
    const ttl = this.settings.resultStore?.resultTtlSeconds || 86_400;
    await this.redis
      .multi()
      .hset(keys.state, { target: String(target), total: String(total), launched: String(target), full: '0', owner })
      .sadd(keys.inflight, ...Array.from({ length: target }, (_, g) => String(g)))
      .expire(keys.state, ttl)
      .expire(keys.inflight, ttl)
      .exec();
    const qn = queueName('rollout', req.model);
    const now = Date.now();
    const work = workOf(req.decoding, req.groupSize);
    const parent: RolloutPayload = rolloutJob.parsePayload({
      rolloutId: id,
      owner,
      model: req.model,
      requestKey,
      targetGroups: target,
      totalPrompts: total,
      createdAt: now,
      ...(seedDrawn ? { seedDrawn } : {}),
    });
    await this.flows.add({
      name: rolloutJob.name,
      queueName: qn,
      data: parent,
      // the parent is kept until its result expires: GET /v1/rollouts/:id reads it
      opts: this.queues.jobOptions('rollout', { jobId: id, removeOnComplete: { age: ttl }, removeOnFail: { age: ttl } }),
      children: Array.from({ length: target }, (_, g) => ({
        name: rolloutGroupJob.name,
        queueName: qn,
        data: { rolloutId: id, model: req.model, requestKey, groupIndex: g, createdAt: now, work } satisfies RolloutGroupPayload,
        opts: this.queues.definitionOptions(rolloutGroupJob, { jobId: rolloutGroupJobId(id, g), ignoreDependencyOnFailure: true }),
      })),
    });
    await this.redis.expire(keys.finished, ttl);
    return { id, targetGroups: target };
  }

  private async job(owner: string, id: string): Promise<{ job: Job; payload: RolloutPayload }> {
    if (!/^ro-[0-9a-f-]{36}$/.test(id)) throw ApiError.notFound('rollout', id.slice(0, 128));
    for (const m of this.settings.models) {
      const job = await this.queue(m.name).getJob(id);
      if (!job) continue;
      const payload = job.data as RolloutPayload;
      if (payload.owner !== owner) break;
      return { job, payload };
    }
    throw ApiError.notFound('rollout', id);
  }

  async view(owner: string, id: string): Promise<RolloutView> {
    const found = await this.job(owner, id);
    const payload = found.payload;
    const keys = rolloutStateKeys(this.settings.queuePrefix, id);
    const [state, finished] = await Promise.all([this.redis.hgetall(keys.state), this.redis.lrange(keys.finished, 0, -1)]);
    const { job, state: st } = await settledSnapshot(this.queue(payload.model), found.job);
    let result: RolloutResult | null = null;
    if (st === 'completed') {
      const ref = rolloutReturnSchema.safeParse(job.returnvalue);
      if (ref.success) result = await this.store.getJson<RolloutResult>(ref.data.resultKey);
    }
    const req = await this.store.getJson<RolloutRequest>(payload.requestKey);
    const cancelled = state.cancelled === '1';
    const status: RolloutView['status'] =
      st === 'completed'
        ? cancelled
          ? 'cancelled'
          : 'completed'
        : st === 'failed'
          ? 'failed'
          : cancelled
            ? 'cancelling'
            : finished.length > 0 || st === 'active' || (await this.anyGroupActive(payload))
              ? 'running'
              : 'queued';
    return {
      id,
      object: 'rollout',
      model: payload.model,
      status,
      created_at: Math.floor(payload.createdAt / 1000),
      group_size: req?.groupSize ?? 0,
      prompts: payload.totalPrompts,
      target_groups: payload.targetGroups,
      progress: {
        launched: Number(state.launched ?? 0),
        finished: finished.length,
        kept: finished.filter((f) => f.endsWith(':1')).length,
        full: state.full === '1',
      },
      failed_reason: job.failedReason ?? null,
      result,
    };
  }

  /** Whether a group of this rollout is being generated right now (the parent waits for children meanwhile). */
  private async anyGroupActive(p: RolloutPayload): Promise<boolean> {
    const launched = Number((await this.redis.hget(rolloutStateKeys(this.settings.queuePrefix, p.rolloutId).state, 'launched')) ?? 0);
    const q = this.queue(p.model);
    for (let g = 0; g < Math.min(launched, 64); g++) {
      const j = await q.getJob(rolloutGroupJobId(p.rolloutId, g));
      if (j && (await j.getState()) === 'active') return true;
    }
    return false;
  }

  /**
   * Cancels a rollout: marks its state `cancelled` (groups that have not started skip, finishing
   * groups launch no refills) and asks every launched group to stop at its next block boundary
   * (the worker keeps the partial samples as `aborted`). The parent still aggregates what finished,
   * writes the JSONL and ends the stream. Idempotent; a finished rollout is left as it is.
   */
  async cancel(owner: string, id: string): Promise<RolloutView> {
    const { payload } = await this.job(owner, id);
    const before = await this.view(owner, id);
    if (before.status === 'completed' || before.status === 'failed' || before.status === 'cancelled') return before;
    const keys = rolloutStateKeys(this.settings.queuePrefix, id);
    await this.redis.hset(keys.state, 'cancelled', '1');
    const launched = Number((await this.redis.hget(keys.state, 'launched')) ?? payload.targetGroups);
    const q = queueName('rollout', payload.model);
    for (let g = 0; g < launched; g++) await requestCancel(this.redis, { prefix: this.settings.queuePrefix, queue: q, jobId: rolloutGroupJobId(id, g) });
    return this.view(owner, id);
  }

  async jsonl(owner: string, id: string): Promise<Buffer> {
    const v = await this.view(owner, id);
    if (v.status !== 'completed' && v.status !== 'cancelled')
      throw new ApiError(409, `Rollout ${id} is ${v.status}; its trajectories are written when it completes.`, 'rollout_not_finished');
    const buf = await this.store.jsonl(id);
    if (!buf) throw new ApiError(410, `The trajectories of rollout ${id} have expired.`, 'expired');
    return buf;
  }

  async page(owner: string, id: string, group: string, cursor: string | null, count: number, opts: ReadOptions = {}): Promise<StreamPage> {
    await this.job(owner, id);
    try {
      return await this.store.read(id, group, cursor, count, opts);
    } catch (e) {
      if (e instanceof StreamCursorError) throw new ApiError(400, e.message, e.param === 'cursor' ? 'invalid_cursor' : 'invalid_value', e.param);
      throw e;
    }
  }

  async onModuleDestroy(): Promise<void> {
    // the queues are the QueueRegistry's, closed by GatewayModule on shutdown
    await this.flows.close().catch(() => undefined);
  }
}
