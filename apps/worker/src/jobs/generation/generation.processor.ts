// Thin BullMQ processor: hands the job to GenerationService (JobHost: hand-back on shutdown).
import { Injectable } from '@nestjs/common';
import type { Job } from 'bullmq';
import type { GenerationPayload, GenerationReturn } from '@dllm/contracts';
import { JobHost } from '../job-stop';
import { GenerationService } from './generation.service';

@Injectable()
export class GenerationProcessor extends JobHost {
  constructor(private readonly service: GenerationService) {
    super();
  }

  /** One generation job. */
  protected handle(job: Job<GenerationPayload>): Promise<GenerationReturn> {
    return this.service.run(job);
  }
}
