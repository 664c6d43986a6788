// Shared providers of the worker process: config, Redis connections, result store, cancel
// registry, engine, metrics.
import { DynamicModule, Global, Inject, Module, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { BlobStore } from '@dllm/storage';
import type { Redis } from 'ioredis';
import type { Config } from '@dllm/config';
import { CancelRegistry, createRedis, withLease } from '@dllm/queue';
import { DiscoveryModule } from '@nestjs/core';
import { WorkerLifecycle } from '../jobs/lifecycle';
import { EngineHolder } from './engine-holder';
import { workerResultStore } from './result-store';
import { CONFIG, REDIS, RESULT_STORE, SUBSCRIBER } from './tokens';
import { WorkerMetrics } from './worker-metrics';

const SWEEP_EVERY_MS = 10 * 60_000;

@Global()
@Module({})
export class CoreModule implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(SUBSCRIBER) private readonly subscriber: Redis,
    @Inject(RESULT_STORE) private readonly store: BlobStore,
    @Inject(CONFIG) private readonly config: Config,
  ) {}

  static forRoot(config: Config): DynamicModule {
    return {
      module: CoreModule,
      imports: [DiscoveryModule],
      providers: [
        WorkerLifecycle,
        { provide: CONFIG, useValue: config },
        { provide: REDIS, useFactory: () => createRedis(config.redis.url, 'dllm-worker') },
        { provide: SUBSCRIBER, useFactory: () => createRedis(config.redis.url, 'dllm-worker-cancel') },
        {
          provide: RESULT_STORE,
          inject: [REDIS],
          useFactory: (redis: Redis) => workerResultStore(config, redis),
        },
        {
          provide: CancelRegistry,
          inject: [SUBSCRIBER, REDIS],
          useFactory: async (sub: Redis, redis: Redis) => {
            const reg = new CancelRegistry(sub, redis, config.redis.queuePrefix);
            await reg.start();
            return reg;
          },
        },
        EngineHolder,
        WorkerMetrics,
      ],
      exports: [WorkerLifecycle, CONFIG, REDIS, RESULT_STORE, CancelRegistry, EngineHolder, WorkerMetrics],
    };
  }

  private sweeper?: NodeJS.Timeout;

  onApplicationBootstrap(): void {
    // Large results live in the large-object store (volume or bucket); their expiry is enforced on
    // read and swept here. Every worker schedules the sweep, one per period does it (a bucket sweep
    // lists every object): the lease (token-checked, renewed while a long sweep runs) is left to
    // expire just before the next period.
    const sweep = this.store.sweep?.bind(this.store);
    const lease = `${this.config.redis.queuePrefix}:housekeeping:results-sweep`;
    if (sweep) this.sweeper = setInterval(() => void withLease(this.redis, lease, SWEEP_EVERY_MS * 0.9, () => sweep()).catch(() => false), SWEEP_EVERY_MS);
    this.sweeper?.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    // QUIT would wait for a Redis that is away: only connected clients say goodbye.
    await Promise.allSettled([this.redis, this.subscriber].map((c) => (c.status === 'ready' ? c.quit() : Promise.resolve(c.disconnect()))));
  }
}
