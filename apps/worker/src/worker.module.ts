// The worker process: shared core + one module per job kind (generation now; rollout and distill
// come from the RL issue, each as one more module). Hot model swap lives in the engine holder.
import { BullModule } from '@nestjs/bullmq';
import { DynamicModule, Module } from '@nestjs/common';
import type { Config } from '@dllm/config';
import { redisOptionsFromUrl } from '@dllm/queue';
import { CoreModule } from './core/core.module';
import { GenerationModule } from './jobs/generation/generation.module';
import { RolloutModule } from './rollout/rollout.module';
import { DistillModule } from './distill/distill.module';

@Module({})
export class WorkerModule {
  static forRoot(
    config: Config,
    jobModules: DynamicModule[] = [GenerationModule.forRoot(config), RolloutModule.forRoot(config), DistillModule.forRoot(config)],
  ): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        CoreModule.forRoot(config),
        BullModule.forRoot({ connection: redisOptionsFromUrl(config.redis.url), prefix: config.redis.queuePrefix }),
        ...jobModules,
      ],
    };
  }
}
