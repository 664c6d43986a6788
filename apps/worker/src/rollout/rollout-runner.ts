// The rollout job kind, without Nest: group children and the aggregating parent (see
// libs/contracts/src/jobs/rollout.ts for the flow). Used by the Nest processor and by tests on a
// real BullMQ worker.
import { UnrecoverableError, type Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  describeIssues,
  resolveRolloutRequest,
  rolloutEngineOptions,
  rolloutGroupJob,
  rolloutBaseSeed,
  rolloutGroupJobId,
  rolloutJob,
  rolloutStateKeys,
  type RolloutGroupPayload,
  type RolloutGroupReturn,
  type RolloutPayload,
  type RolloutRequest,
  type RolloutResult,
  type RolloutReturn,
} from '@dllm/contracts';
import type { Engine } from '@dllm/engine';
import { requestCancel } from '@dllm/queue';
import { engineFacts } from '../jobs/generation/generation.service';
import { HandBackError, type RegisterJob } from '../jobs/job-stop';
import {
  applyStaleness,
  failedRecord,
  planDynamicSampling,
  type PolicyRegistry,
  rolloutBlobKeys,
  runGroup,
  scoreRecords,
  type TrajectoryStore,
  verifiers,
  type FilterReason,
  type PlannerGroup,
  type TrajectoryRecord,
} from '@dllm/rl';

export interface RolloutRunnerDeps {
  redis: Redis;
  store: TrajectoryStore;
  registry: PolicyRegistry;
  /** Queue prefix (BullMQ prefix and our key prefix). */
  prefix: string;
  /** The model's rollout queue (children are added to it). */
  queue: Queue;
  engine: () => Engine;
  /**
   * Stop signals of a running child: a remote cancel (the batch is full, or the rollout was
   * cancelled: partial samples are kept as `aborted`) or the worker's shutdown (the group is handed
   * back to the queue and runs again from the start elsewhere; nothing of it was stored).
   */
  registerJob?: RegisterJob;
  /** Extra job options of children (retention). */
  childOptions?: Record<string, unknown>;
  ttlSeconds?: number;
}

type JobLike<T> = Pick<Job<T>, 'id' | 'data' | 'name' | 'queueName'> &
  Partial<Pick<Job<T>, 'getChildrenValues' | 'updateProgress' | 'getIgnoredChildrenFailures'>>;

export class RolloutRunner {
  private readonly requests = new Map<string, RolloutRequest>();

  constructor(private readonly d: RolloutRunnerDeps) {}

  /** Runs a rollout job: a group child or the aggregating parent, by job name. */
  process(job: JobLike<unknown>): Promise<RolloutGroupReturn | RolloutReturn> {
    if (job.name === rolloutGroupJob.name) return this.group(job as JobLike<RolloutGroupPayload>);
    if (job.name === rolloutJob.name) return this.aggregate(job as JobLike<RolloutPayload>);
    throw new UnrecoverableError(`rollout queue: unknown job name '${job.name}'`);
  }

  private async request(rolloutId: string, key: string): Promise<RolloutRequest> {
    const cached = this.requests.get(rolloutId);
    if (cached) return cached;
    const r = await this.d.store.getJson<RolloutRequest>(key);
    if (!r) throw new UnrecoverableError(`rollout ${rolloutId}: request ${key} is missing from the store (expired?)`);
    if (this.requests.size > 64) this.requests.delete(this.requests.keys().next().value!);
    this.requests.set(rolloutId, r);
    return r;
  }

  // ---- child: one group ----

  /**
   * One group: G samples of one prompt, stored as one blob, then the dynamic-sampling bookkeeping.
   * Throws HandBackError when the worker's shutdown cut the group short: it stores nothing then,
   * so the retry (same seeds) writes the group once.
   */
  async group(job: JobLike<RolloutGroupPayload>): Promise<RolloutGroupReturn> {
    const parsed = rolloutGroupJob.safeParsePayload(job.data);
    if (!parsed.success)
      throw new UnrecoverableError(`invalid rollout group payload: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    const p = parsed.data;
    const keys = rolloutStateKeys(this.d.prefix, p.rolloutId);
    const skipped = (): RolloutGroupReturn => ({
      groupIndex: p.groupIndex,
      recordsKey: null,
      skipped: true,
      samples: 0,
      tokens: 0,
      promptTokens: 0,
      prefixHitTokens: 0,
      wallMs: 0,
    });
    const [full, cancelled] = await this.d.redis.hmget(keys.state, 'full', 'cancelled');
    if (full === '1' || cancelled === '1') {
      // the batch is full, or the rollout was cancelled: a group that has not started is skipped
      await this.finishGroup(p, null);
      return skipped();
    }
    const req = await this.request(p.rolloutId, p.requestKey);
    const prompt = req.prompts[p.groupIndex];
    if (!prompt) throw new UnrecoverableError(`rollout ${p.rolloutId}: no prompt ${p.groupIndex}`);
    const verifier = verifiers.bind(prompt.verifier ?? req.verifier);
    const engine = this.d.engine();
    // The gateway's verdict again, against the version served now: a group it cannot serve fails
    // without retries, with the resolver's reasons (the parent reports it as an incomplete group).
    const issues = resolveRolloutRequest(engineFacts(engine), { decoding: req.decoding, sampling: req.sampling, prompts: [prompt] });
    if (issues.length) throw new UnrecoverableError(`rollout ${p.rolloutId} group ${p.groupIndex}: invalid request: ${describeIssues(issues)}`);
    const baseSeed = (rolloutBaseSeed(p.rolloutId, req.sampling.seed) + p.groupIndex * req.groupSize) >>> 0;
    const stop = this.d.registerJob ? await this.d.registerJob(job.queueName, String(job.id)) : null;
    let run;
    try {
      run = await runGroup(
        engine,
        {
          rolloutId: p.rolloutId,
          groupIndex: p.groupIndex,
          promptId: prompt.id ?? `p${p.groupIndex}`,
          prompt: prompt.prompt,
          answer: prompt.answer ?? null,
          verifier,
          groupSize: req.groupSize,
          options: rolloutEngineOptions(req),
          baseSeed,
        },
        stop?.signal,
      );
    } finally {
      stop?.done();
    }
    // shutdown, not a cancel: a group cut short goes back to the queue whole (a finished one is kept)
    if (stop?.handedBack() && run.records.some((r) => r.status === 'aborted')) throw new HandBackError(`rollout ${p.rolloutId} group ${p.groupIndex}`);
    await this.fillPolicySeq(run.records);
    const recordsKey = await this.d.store.putGroup(p.rolloutId, p.groupIndex, run.records);
    const verdict = scoreRecords(
      run.records.map((r) => ({ ...r })),
      { config: req.reward },
    ).groups[0];
    await this.finishGroup(p, verdict.kept);
    return {
      groupIndex: p.groupIndex,
      recordsKey,
      skipped: false,
      samples: run.records.length,
      tokens: run.completionTokens,
      promptTokens: run.promptTokens,
      prefixHitTokens: run.prefixHitTokens,
      wallMs: run.wallMs,
    };
  }

  /** Sets `policy.seq` on each record from the registry (0 for a version never registered). */
  private async fillPolicySeq(records: TrajectoryRecord[]): Promise<void> {
    const seqs = new Map<string, number>();
    for (const r of records) {
      const k = `${r.policy.name}@${r.policy.version}`;
      let seq = seqs.get(k);
      if (seq === undefined) seqs.set(k, (seq = r.policy.version === 'unknown' ? 0 : await this.d.registry.seqOf(r.policy.name, r.policy.version)));
      r.policy.seq = seq;
    }
  }

  /** Marks (or rejects) samples whose policy version breaks the request's staleness bound (at aggregation time). */
  private async applyStaleness(req: RolloutRequest, records: TrajectoryRecord[]): Promise<void> {
    const bound = req.policy;
    if (!bound || (bound.requiredVersion === undefined && bound.maxStaleness === undefined)) return;
    const latest = (await this.d.registry.latest(req.model))?.seq ?? 0;
    const required = bound.requiredVersion === undefined ? null : ((await this.d.registry.get(req.model, bound.requiredVersion))?.seq ?? null);
    await applyStaleness(records, bound, (n, v) => this.d.registry.seqOf(n, v), latest, required);
  }

  /**
   * Dynamic sampling bookkeeping, atomically (WATCH/MULTI on a dedicated connection): record this
   * group's outcome (null = skipped), launch more groups from the reserve when filters left the
   * batch short, and once it is full cancel the groups still running. Runs while this child is
   * still active, so the parent cannot start before the new children exist.
   */
  private async finishGroup(p: RolloutGroupPayload, kept: boolean | null): Promise<void> {
    const keys = rolloutStateKeys(this.d.prefix, p.rolloutId);
    const conn = this.d.redis.duplicate();
    let launch: number[] = [];
    let cancel: string[] = [];
    try {
      for (let attempt = 0; attempt < 50; attempt++) {
        await conn.watch(keys.state, keys.finished, keys.inflight);
        const [state, finishedRaw, inflightRaw] = await Promise.all([
          conn.hgetall(keys.state),
          conn.lrange(keys.finished, 0, -1),
          conn.smembers(keys.inflight),
        ]);
        const target = Number(state.target);
        const total = Number(state.total);
        const launched = Number(state.launched);
        if (!Number.isFinite(target) || !Number.isFinite(total)) {
          await conn.unwatch();
          return; // no state (expired or a test without the gateway): nothing to plan
        }
        const finished: PlannerGroup[] = finishedRaw.map((s, i) => {
          const [g, k] = s.split(':');
          return { groupId: g, finishedAt: i, kept: k === '1' };
        });
        const me = String(p.groupIndex);
        const already = finished.some((f) => f.groupId === me);
        if (!already && kept !== null) finished.push({ groupId: me, finishedAt: finished.length, kept });
        const inFlight = inflightRaw.filter((g) => g !== me);
        // a cancelled rollout launches nothing more from the reserve
        const remaining = state.cancelled === '1' ? 0 : Math.max(0, total - launched);
        const plan = planDynamicSampling({ targetGroups: target, finished, inFlight, remainingPrompts: remaining });
        const m = conn.multi();
        if (!already && kept !== null) m.rpush(keys.finished, `${me}:${kept ? 1 : 0}`);
        m.srem(keys.inflight, me);
        launch = Array.from({ length: plan.launch }, (_, i) => launched + i);
        if (launch.length) {
          m.hincrby(keys.state, 'launched', launch.length);
          m.sadd(keys.inflight, ...launch.map(String));
        }
        if (plan.full) m.hset(keys.state, 'full', '1');
        cancel = plan.full ? plan.cancel : [];
        const res = await m.exec();
        if (res !== null) break;
        launch = [];
        cancel = [];
      }
    } finally {
      conn.disconnect();
    }
    for (const g of launch) {
      // every group of a request costs the same: the refill carries the finishing group's work
      const payload: RolloutGroupPayload = {
        rolloutId: p.rolloutId,
        model: p.model,
        requestKey: p.requestKey,
        groupIndex: g,
        createdAt: Date.now(),
        ...(p.work ? { work: p.work } : {}),
      };
      await this.d.queue.add(rolloutGroupJob.name, payload, {
        ...rolloutGroupJob.defaults,
        ...(this.d.childOptions ?? {}),
        jobId: rolloutGroupJobId(p.rolloutId, g),
        parent: { id: p.rolloutId, queue: this.d.queue.qualifiedName },
        ignoreDependencyOnFailure: true,
      });
    }
    for (const g of cancel)
      await requestCancel(this.d.redis, { prefix: this.d.prefix, queue: this.d.queue.name, jobId: rolloutGroupJobId(p.rolloutId, Number(g)) });
  }

  // ---- parent: the batch ----

  async aggregate(job: JobLike<RolloutPayload>): Promise<RolloutReturn> {
    const parsed = rolloutJob.safeParsePayload(job.data);
    if (!parsed.success)
      throw new UnrecoverableError(`invalid rollout payload: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    const p = parsed.data;
    const t0 = Date.now();
    const req = await this.request(p.rolloutId, p.requestKey);
    const values = job.getChildrenValues ? ((await job.getChildrenValues()) as Record<string, RolloutGroupReturn>) : {};
    const failures = job.getIgnoredChildrenFailures ? await job.getIgnoredChildrenFailures() : {};
    const keys = rolloutStateKeys(this.d.prefix, p.rolloutId);
    const finishedRaw = await this.d.redis.lrange(keys.finished, 0, -1);
    const [launchedRaw, cancelledRaw] = await this.d.redis.hmget(keys.state, 'launched', 'cancelled');
    const launched = Number(launchedRaw ?? p.targetGroups);

    const groups: TrajectoryRecord[][] = [];
    let tokens = 0;
    let promptTokens = 0;
    let prefixHit = 0;
    const seen = new Set<number>();
    for (const v of Object.values(values)) {
      const rv = rolloutGroupJob.parseResult(typeof v === 'string' ? JSON.parse(v) : v);
      seen.add(rv.groupIndex);
      if (rv.skipped || !rv.recordsKey) continue;
      const recs = await this.d.store.getJson<TrajectoryRecord[]>(rv.recordsKey);
      if (!recs) throw new Error(`rollout ${p.rolloutId}: group ${rv.groupIndex} records are missing (${rv.recordsKey})`);
      groups.push(recs);
      tokens += rv.tokens;
      promptTokens += rv.promptTokens;
      prefixHit += rv.prefixHitTokens;
    }
    // children that failed for good: their samples are reported as failed
    for (const [k, reason] of Object.entries(failures)) {
      const g = Number(/\.g(\d+)$/.exec(k)?.[1]);
      if (!Number.isInteger(g) || seen.has(g) || !req.prompts[g]) continue;
      seen.add(g);
      const pr = req.prompts[g];
      groups.push(
        Array.from({ length: req.groupSize }, (_, i) =>
          failedRecord(
            {
              rolloutId: p.rolloutId,
              groupIndex: g,
              sampleIndex: i,
              promptId: pr.id ?? `p${g}`,
              prompt: pr.prompt,
              answer: pr.answer ?? null,
              verifier: (pr.verifier ?? req.verifier).name,
              promptTokenIds: [],
            },
            'failed',
            `group job failed: ${reason}`,
            0,
            { name: req.model, version: 'unknown', seq: 0 },
            {},
          ),
        ),
      );
    }
    groups.sort((a, b) => a[0].groupIndex - b[0].groupIndex);
    await this.fillPolicySeq(groups.flat());
    // staleness is judged when the batch is handed over: against the newest version registered now
    await this.applyStaleness(req, groups.flat());

    // the batch: the first targetGroups kept groups in finish order; the other groups that passed the filters are 'batch_full'
    const finished: PlannerGroup[] = finishedRaw.map((s, i) => {
      const [g, k] = s.split(':');
      return { groupId: g, finishedAt: i, kept: k === '1' };
    });
    const forced = new Map<string, FilterReason>();
    if (p.targetGroups < p.totalPrompts) {
      const plan = planDynamicSampling({ targetGroups: p.targetGroups, finished, inFlight: [], remainingPrompts: 0 });
      const inBatch = new Set(plan.batch);
      for (const g of groups) {
        const idx = String(g[0].groupIndex);
        const cancelled = g.some((r) => r.status === 'aborted');
        if (!inBatch.has(idx) && (plan.surplus.includes(idx) || (plan.full && cancelled))) forced.set(g[0].groupId, 'batch_full');
      }
    }
    const all = groups.flat();
    const { groups: summaries, batch } = scoreRecords(all, { config: req.reward, forced });
    const pub = await this.d.store.publish(p.rolloutId, groups, this.d.ttlSeconds);
    const result: RolloutResult = {
      rolloutId: p.rolloutId,
      model: p.model,
      targetGroups: p.targetGroups,
      launchedGroups: launched,
      keptGroups: batch.keptGroups,
      keptSamples: batch.keptSamples,
      samples: all.length,
      filtered: batch.filtered as Record<string, number>,
      rewardMean: batch.rewardMean,
      rewardStd: batch.rewardStd,
      groups: summaries,
      trajectoriesKey: pub.jsonlKey,
      tokens: { completion: tokens, prompt: promptTokens, prefixHit },
      policyVersions: [...new Set(all.filter((r) => r.status !== 'failed' || r.numForwards > 0).map((r) => `${r.policy.name}@${r.policy.version}`))],
      seed: rolloutBaseSeed(p.rolloutId, req.sampling.seed),
      seedDrawn: p.seedDrawn === true,
      cancelled: cancelledRaw === '1',
      wallMs: Date.now() - p.createdAt,
    };
    const resultKey = rolloutBlobKeys.result(p.rolloutId);
    await this.d.store.putJson(resultKey, result);
    return { resultKey, trajectoriesKey: pub.jsonlKey, keptGroups: batch.keptGroups, samples: all.length };
  }
}
