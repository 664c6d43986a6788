// Thin BullMQ processor: hands the job to GenerationService.
import { WorkerHost } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import type { Job } from 'bullmq';
import type { GenerationPayload, GenerationReturn } from '@dllm/contracts';
import { GenerationService } from './generation.service';

@Injectable()
export class GenerationProcessor extends WorkerHost {
  constructor(private readonly service: GenerationService) {
    super();
  }

  process(job: Job<GenerationPayload>, token?: string): Promise<GenerationReturn> {
    return this.service.run(job, token);
  }
}
