// The generation job kind in the worker: its processor bound to this worker's model queue.
import { BullModule, Processor } from '@nestjs/bullmq';
import { DynamicModule, Module } from '@nestjs/common';
import { queueName } from '@dllm/contracts';
import type { Config } from '@dllm/config';
import { JobHandler } from '../job-handler';
import { workerOptions } from '../worker-options';
import { GenerationProcessor } from './generation.processor';
import { GenerationService } from './generation.service';

@Module({})
export class GenerationModule {
  static forRoot(config: Config): DynamicModule {
    // The queue name depends on the served model, so the decorators are applied here, once.
    const queue = queueName('generation', config.worker.model.name);
    @JobHandler('generation')
    @Processor(queue, workerOptions(config))
    class ModelGenerationProcessor extends GenerationProcessor {}
    return { module: GenerationModule, imports: [BullModule.registerQueue({ name: queue })], providers: [GenerationService, ModelGenerationProcessor] };
  }
}
