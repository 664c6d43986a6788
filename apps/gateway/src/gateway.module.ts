import { DynamicModule, Inject, Module, OnApplicationShutdown } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { Redis } from 'ioredis';
import { createRedis, QueueRegistry } from '@dllm/queue';
import { ApiKeyRing } from './auth/api-keys';
import { AuthGuard } from './auth/auth.guard';
import { RateLimiter } from './auth/rate-limiter';
import { BatchesController } from './batches/batches.controller';
import { BatchService } from './batches/batch.service';
import { FileService } from './batches/file.service';
import { FilesController } from './batches/files.controller';
import { HealthController } from './health/health.controller';
import { OpenAiErrorFilter } from './http/error.filter';
import { GenerationService } from './jobs/generation.service';
import { ModelFactsService } from './jobs/model-facts';
import { JobsController } from './jobs/jobs.controller';
import { MetricsService } from './metrics/metrics.service';
import { CompletionsController } from './openai/completions.controller';
import { ModelsController } from './models/models.controller';
import { RolloutController } from './rollout/rollout.controller';
import { RolloutService } from './rollout/rollout.service';
import { DistillController } from './distill/distill.controller';
import { DistillService } from './distill/distill.service';
import type { GatewaySettings } from './settings';
import { gatewayFileStore } from './storage';
import { FILE_STORE, QUEUES, REDIS, SETTINGS } from './tokens';

@Module({})
export class GatewayModule implements OnApplicationShutdown {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(QUEUES) private readonly queues: QueueRegistry,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await this.queues.close(this.redis.status === 'ready' ? 5000 : 500);
    // QUIT would wait for a Redis that is not there: only a connected client says goodbye.
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }

  static forRoot(settings: GatewaySettings): DynamicModule {
    return {
      module: GatewayModule,
      controllers: [
        HealthController,
        CompletionsController,
        JobsController,
        FilesController,
        BatchesController,
        RolloutController,
        ModelsController,
        DistillController,
      ],
      providers: [
        { provide: SETTINGS, useValue: settings },
        {
          provide: REDIS,
          useFactory: () => createRedis(settings.redisUrl, 'gateway', { maxRetriesPerRequest: 3, connectionName: 'dllm-gateway', enableAutoPipelining: true }),
        },
        {
          provide: QUEUES,
          inject: [REDIS],
          useFactory: (redis: Redis) => new QueueRegistry({ connection: redis, prefix: settings.queuePrefix, retention: settings.jobRetention }),
        },
        { provide: FILE_STORE, useFactory: () => gatewayFileStore(settings) },
        { provide: ApiKeyRing, useFactory: () => new ApiKeyRing(settings.apiKeys) },
        {
          provide: RateLimiter,
          inject: [REDIS],
          useFactory: (redis: Redis) => new RateLimiter(redis, settings.keyPrefix, settings.rateLimit.requests, settings.rateLimit.windowMs),
        },
        { provide: APP_GUARD, useClass: AuthGuard },
        { provide: APP_FILTER, useClass: OpenAiErrorFilter },
        MetricsService,
        ModelFactsService,
        GenerationService,
        FileService,
        BatchService,
        RolloutService,
        DistillService,
      ],
    };
  }
}
