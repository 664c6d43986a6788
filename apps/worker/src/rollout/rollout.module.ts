// The rollout job kind in the worker: one processor on the model's rollout queue (parent 'aggregate'
// and child 'group' jobs), and the weight-sync listener that hot-swaps the engine to a newly
// registered policy version (in-flight sequences finish on the old weights; new ones start on the
// new; the KV pool is namespaced by version, so pages never mix).
import { BullModule, Processor, WorkerHost } from '@nestjs/bullmq';
import { DynamicModule, Inject, Injectable, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { Queue, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { queueName, rolloutGroupJob, rolloutGroupReturnSchema } from '@dllm/contracts';
import type { Config } from '@dllm/config';
import { CancelRegistry, createRedis, redisOptionsFromUrl } from '@dllm/queue';
import { PolicyRegistry, TrajectoryStore, type SwapAnnouncement } from '@dllm/rl';
import type { BlobStore } from '@dllm/storage';
import { EngineHolder } from '../core/engine-holder';
import { CONFIG, REDIS, RESULT_STORE } from '../core/tokens';
import { WorkerMetrics } from '../core/worker-metrics';
import { JobHandler } from '../jobs/job-handler';
import { workerOptions } from '../jobs/worker-options';
import { RolloutRunner } from './rollout-runner';

@Injectable()
export class RolloutService implements OnApplicationShutdown {
  private readonly logger = new Logger('Rollout');
  readonly runner: RolloutRunner;
  readonly registry: PolicyRegistry;
  private readonly queue: Queue;
  private readonly sub: Redis;
  private swapping: Promise<void> = Promise.resolve();

  constructor(
    private readonly engine: EngineHolder,
    cancels: CancelRegistry,
    private readonly metrics: WorkerMetrics,
    @Inject(REDIS) redis: Redis,
    @Inject(RESULT_STORE) store: BlobStore,
    @Inject(CONFIG) private readonly config: Config,
  ) {
    const prefix = config.redis.queuePrefix;
    this.queue = new Queue(queueName('rollout', config.worker.model.name), { connection: redisOptionsFromUrl(config.redis.url), prefix });
    this.registry = new PolicyRegistry(redis, prefix);
    const r = config.retention;
    this.runner = new RolloutRunner({
      redis,
      prefix,
      queue: this.queue,
      store: new TrajectoryStore(redis, store, prefix, { ttlSeconds: config.storage.resultTtlSeconds }),
      registry: this.registry,
      engine: () => engine.engine,
      registerCancel: (q, id) => cancels.register(q, id),
      childOptions: { removeOnComplete: { count: r.completed.count, age: r.completed.ageSeconds }, removeOnFail: { count: r.failed.count, age: r.failed.ageSeconds } },
      ttlSeconds: config.storage.resultTtlSeconds || undefined,
    });
    // weight sync: a version registered for this model is loaded without a restart
    this.sub = createRedis(config.redis.url, 'dllm-worker-models');
    this.sub.on('message', (channel: string, message: string) => {
      if (channel !== this.registry.channel) return;
      let a: SwapAnnouncement;
      try {
        a = JSON.parse(message) as SwapAnnouncement;
      } catch {
        return;
      }
      if (a.name !== config.worker.model.name) return;
      this.swapping = this.swapping.then(() => this.swap(a));
    });
    void this.sub.subscribe(this.registry.channel).catch((e: Error) => this.logger.error(`cannot subscribe to model announcements: ${e.message}`));
  }

  private async swap(a: SwapAnnouncement): Promise<void> {
    try {
      await this.engine.load();
      const e = this.engine.engine;
      if (e.model.version === a.version) return;
      const t = Date.now();
      await e.swapModel(a.dir);
      this.logger.log(`hot swap: ${a.name} now serves version ${a.version} (#${a.seq}) from ${a.dir} in ${Date.now() - t} ms; in-flight sequences finish on the old version`);
    } catch (err) {
      this.logger.error(`hot swap to ${a.name}@${a.version} failed: ${(err as Error).message}`);
    }
  }

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
      this.metrics.jobs.inc({ kind: 'rollout', model, outcome: 'error' });
      this.logger.warn(`rollout job ${job.id} (${job.name}) failed: ${(e as Error).message}`);
      throw e;
    } finally {
      this.metrics.active.dec({ kind: 'rollout' });
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([this.queue.close(), this.sub.quit()]);
  }
}

@Injectable()
export class RolloutProcessor extends WorkerHost {
  constructor(private readonly service: RolloutService) {
    super();
  }

  process(job: Job): Promise<unknown> {
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
    return { module: RolloutModule, imports: [BullModule.registerQueue({ name: queue })], providers: [RolloutService, ModelRolloutProcessor] };
  }
}
