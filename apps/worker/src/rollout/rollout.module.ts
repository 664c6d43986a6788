// The rollout job kind in the worker: one processor on the model's rollout queue (parent 'aggregate'
// and child 'group' jobs), and the weight sync that hot-swaps the engine to the registry's newest
// policy version (in-flight sequences finish on the old weights; new ones start on the new; the KV
// pool is namespaced by version, so pages never mix). Versions are taken from three places:
//   - at boot, after the model loaded and before any job is taken: the registry's `latest`;
//   - every announcement on the pub/sub channel;
//   - every (re)connection of the subscriber: `latest` again, since announcements published while
//     it was away are lost (pub/sub does not queue).
// Sequence numbers only go up: an announcement at or below the served sequence is ignored, and of
// several pending targets only the highest is loaded.
// The rollout queue (children launched by dynamic sampling are added to it) is the one BullModule
// registers for the processor: one Queue object per queue in the process.
import { BullModule, getQueueToken, Processor } from '@nestjs/bullmq';
import { DynamicModule, Inject, Injectable, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import type { Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { queueName, rolloutGroupJob, rolloutGroupReturnSchema } from '@dllm/contracts';
import type { Config } from '@dllm/config';
import { createRedis, retentionOptions } from '@dllm/queue';
import { parseAnnouncement, PolicyRegistry, TrajectoryStore, type SwapAnnouncement } from '@dllm/rl';
import type { BlobStore } from '@dllm/storage';
import { EngineHolder } from '../core/engine-holder';
import { CONFIG, REDIS, RESULT_STORE } from '../core/tokens';
import { WorkerMetrics } from '../core/worker-metrics';
import { JobHandler } from '../jobs/job-handler';
import { JobHost } from '../jobs/job-stop';
import { WorkerLifecycle } from '../jobs/lifecycle';
import { workerOptions } from '../jobs/worker-options';
import { RolloutRunner } from './rollout-runner';

/** This worker's rollout queue (the Queue BullModule.registerQueue owns). */
export const ROLLOUT_QUEUE = Symbol('rollout-queue');

@Injectable()
export class RolloutService implements OnApplicationShutdown {
  private readonly logger = new Logger('Rollout');
  readonly runner: RolloutRunner;
  readonly registry: PolicyRegistry;
  private readonly sub: Redis;
  private swapping: Promise<void> = Promise.resolve();
  /** Registry sequence number of the version the engine serves (null until known; 0 = never registered). */
  private servedSeq: number | null = null;
  /** Highest announced version not yet loaded (the swap loop takes only this one). */
  private target: SwapAnnouncement | null = null;

  constructor(
    private readonly engine: EngineHolder,
    lifecycle: WorkerLifecycle,
    private readonly metrics: WorkerMetrics,
    @Inject(REDIS) redis: Redis,
    @Inject(RESULT_STORE) store: BlobStore,
    @Inject(CONFIG) private readonly config: Config,
    @Inject(ROLLOUT_QUEUE) queue: Queue,
  ) {
    const prefix = config.redis.queuePrefix;
    this.registry = new PolicyRegistry(redis, prefix);
    this.runner = new RolloutRunner({
      redis,
      prefix,
      queue,
      store: new TrajectoryStore(redis, store, prefix, { ttlSeconds: config.storage.resultTtlSeconds }),
      registry: this.registry,
      engine: () => engine.engine,
      registerJob: (q, id) => lifecycle.register(q, id),
      childOptions: retentionOptions(config.retention),
      ttlSeconds: config.storage.resultTtlSeconds || undefined,
    });
    // weight sync: the registry's latest before the first job, then announcements and reconnects
    // (the subscription is confirmed first: a version registered between the read and the subscribe would be missed)
    engine.beforeReady(async () => {
      await subscribed;
      await this.syncLatest('boot');
    });
    // the connection name carries the queue prefix: one deployment's subscribers are told apart on a shared Redis
    this.sub = createRedis(config.redis.url, `dllm-worker-models:${prefix}`);
    this.sub.on('message', (channel: string, message: string) => {
      const a = channel === this.registry.channel ? parseAnnouncement(message) : null;
      if (a && a.name === config.worker.model.name) this.request(a, 'announcement');
    });
    let connections = 0;
    this.sub.on('ready', () => {
      // ioredis re-subscribes by itself on reconnect; once that is confirmed (SUBSCRIBE again is a
      // no-op queued behind it), what was announced meanwhile is read from the registry
      if (connections++ === 0 || !this.engine.ready) return;
      void this.sub
        .subscribe(this.registry.channel)
        .then(() => this.syncLatest('reconnect'))
        .catch((e: Error) => this.logger.error(`after reconnecting: cannot read the latest model version: ${e.message}`));
    });
    const subscribed = this.sub
      .subscribe(this.registry.channel)
      .catch((e: Error) => this.logger.error(`cannot subscribe to model announcements: ${e.message}`));
  }

  /** Reads the registry's latest version of this model and swaps to it when it is newer than the served one. */
  private async syncLatest(why: 'boot' | 'reconnect'): Promise<void> {
    const latest = await this.registry.latest(this.config.worker.model.name);
    if (!latest) return;
    this.request({ name: latest.name, version: latest.version, dir: latest.dir, seq: latest.seq }, why);
    await this.swapping;
  }

  /** Queues a swap to `a` unless a version at least as new is served or already queued. */
  private request(a: SwapAnnouncement, why: string): void {
    if (this.target && this.target.seq >= a.seq) return;
    this.target = a;
    this.swapping = this.swapping.then(() => this.swapToTarget(why));
  }

  private async swapToTarget(why: string): Promise<void> {
    const a = this.target;
    if (!a) return;
    try {
      // at boot this runs inside load() (a beforeReady hook): the engine is set, load() not resolved yet
      if (!this.engine.ready) await this.engine.load();
      const e = this.engine.engine;
      if (this.servedSeq === null) this.servedSeq = await this.registry.seqOf(e.model.name, e.model.version);
      if (a.seq <= this.servedSeq) {
        if (a.seq < this.servedSeq) this.logger.warn(`ignoring ${a.name}@${a.version} (#${a.seq}): already serving #${this.servedSeq}; versions never go back`);
        return;
      }
      if (e.model.version === a.version) {
        this.servedSeq = a.seq;
        return;
      }
      const t = Date.now();
      await e.swapModel(a.dir);
      this.servedSeq = a.seq;
      this.logger.log(
        `hot swap (${why}): ${a.name} now serves version ${a.version} (#${a.seq}) from ${a.dir} in ${Date.now() - t} ms; in-flight sequences finish on the old version`,
      );
    } catch (err) {
      this.logger.error(`hot swap to ${a.name}@${a.version} (#${a.seq}) failed: ${(err as Error).message}`);
    } finally {
      if (this.target === a) this.target = null;
    }
  }

  /** Runs one rollout job (group or aggregate) with metrics and logs (a hand-back is counted as such, not as an error). */
  async process(job: Job): Promise<unknown> {
    const model = this.config.worker.model.name;
    const t = Date.now();
    this.metrics.active.inc({ kind: 'rollout' });
    try {
      const r = await this.runner.process(job);
      this.metrics.jobs.inc({ kind: 'rollout', model, outcome: job.name });
      const g = rolloutGroupReturnSchema.safeParse(r);
      if (job.name === rolloutGroupJob.name && g.success && !g.data.skipped) {
        // prefix_hit: prompt tokens served from KV pages shared inside the group (prefill saved)
        this.metrics.tokens.inc({ model, type: 'completion' }, g.data.tokens);
        this.metrics.tokens.inc({ model, type: 'prompt' }, g.data.promptTokens);
        this.metrics.tokens.inc({ model, type: 'prefix_hit' }, g.data.prefixHitTokens);
      }
      this.metrics.latency.observe({ kind: 'rollout', model }, (Date.now() - t) / 1000);
      return r;
    } catch (e) {
      this.metrics.jobThrew(e, { kind: 'rollout', model }, this.logger, `rollout job ${job.id} (${job.name})`);
      throw e;
    } finally {
      this.metrics.active.dec({ kind: 'rollout' });
    }
  }

  async onApplicationShutdown(): Promise<void> {
    // the queue is BullModule's (closed by it)
    await Promise.allSettled([this.sub.quit()]);
  }
}

@Injectable()
export class RolloutProcessor extends JobHost {
  constructor(private readonly service: RolloutService) {
    super();
  }

  /** One rollout job (group child or aggregating parent). */
  protected handle(job: Job): Promise<unknown> {
    return this.service.process(job);
  }
}

@Module({})
export class RolloutModule {
  static forRoot(config: Config): DynamicModule {
    const queue = queueName('rollout', config.worker.model.name);
    @JobHandler('rollout')
    @Processor(queue, workerOptions(config))
    class ModelRolloutProcessor extends RolloutProcessor {}
    return {
      module: RolloutModule,
      imports: [BullModule.registerQueue({ name: queue })],
      providers: [{ provide: ROLLOUT_QUEUE, useExisting: getQueueToken(queue) }, RolloutService, ModelRolloutProcessor],
    };
  }
}
