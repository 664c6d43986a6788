// The distill job kind in the worker: one processor on the model's distill queue.
import { BullModule, Processor } from '@nestjs/bullmq';
import { DynamicModule, Inject, Injectable, Logger, Module } from '@nestjs/common';
import type { Job } from 'bullmq';
import { queueName } from '@dllm/contracts';
import type { Config } from '@dllm/config';
import type { BlobStore } from '@dllm/storage';
import { EngineHolder } from '../core/engine-holder';
import { CONFIG, RESULT_STORE } from '../core/tokens';
import { WorkerMetrics } from '../core/worker-metrics';
import { JobHandler } from '../jobs/job-handler';
import { JobHost } from '../jobs/job-stop';
import { WorkerLifecycle } from '../jobs/lifecycle';
import { workerOptions } from '../jobs/worker-options';
import { DistillRunner } from './distill-runner';

@Injectable()
export class DistillService {
  private readonly logger = new Logger('Distill');
  readonly runner: DistillRunner;

  constructor(
    engine: EngineHolder,
    lifecycle: WorkerLifecycle,
    private readonly metrics: WorkerMetrics,
    @Inject(RESULT_STORE) store: BlobStore,
    @Inject(CONFIG) private readonly config: Config,
  ) {
    this.runner = new DistillRunner({
      store,
      engine: () => engine.engine,
      modelDir: config.worker.model.dir,
      registerJob: (q, id) => lifecycle.register(q, id),
      ttlSeconds: config.storage.resultTtlSeconds || undefined,
    });
  }

  /** Runs one distill job with metrics and logs (a hand-back is counted as such, not as an error). */
  async process(job: Job): Promise<unknown> {
    const model = this.config.worker.model.name;
    const t = Date.now();
    this.metrics.active.inc({ kind: 'distill' });
    try {
      const r = await this.runner.process(job);
      this.metrics.jobs.inc({ kind: 'distill', model, outcome: 'completed' });
      this.metrics.latency.observe({ kind: 'distill', model }, (Date.now() - t) / 1000);
      this.logger.log(`distill ${job.id}: kept ${r.kept}/${r.total} in ${r.wallMs} ms`);
      return r;
    } catch (e) {
      this.metrics.jobThrew(e, { kind: 'distill', model }, this.logger, `distill job ${job.id}`);
      throw e;
    } finally {
      this.metrics.active.dec({ kind: 'distill' });
    }
  }
}

@Injectable()
export class DistillProcessor extends JobHost {
  constructor(private readonly service: DistillService) {
    super();
  }

  /** One distill job. */
  protected handle(job: Job): Promise<unknown> {
    return this.service.process(job);
  }
}

@Module({})
export class DistillModule {
  static forRoot(config: Config): DynamicModule {
    const queue = queueName('distill', config.worker.model.name);
    // distillation is long and batch-internal: one job at a time per worker
    @JobHandler('distill')
    @Processor(queue, workerOptions(config, 1))
    class ModelDistillProcessor extends DistillProcessor {}
    return { module: DistillModule, imports: [BullModule.registerQueue({ name: queue })], providers: [DistillService, ModelDistillProcessor] };
  }
}
