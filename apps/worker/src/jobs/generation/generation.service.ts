// Runs one generation job on the engine: validates the payload, streams one progress event per
// committed block, honours remote cancel (partial output, finishReason 'cancelled') and shutdown
// hand-back, stores the result once and returns a small reference.
import { Inject, Injectable, Logger } from '@nestjs/common';
import { UnrecoverableError, type Job } from 'bullmq';
import {
  describeIssues,
  generationJob,
  resolveRequest,
  type GenerationPayload,
  type GenerationProgress,
  type GenerationResult,
  type GenerationReturn,
  type ModelFacts,
} from '@dllm/contracts';
import type { Engine } from '@dllm/engine';
import type { Config } from '@dllm/config';
import { storeGenerationResult } from '@dllm/queue';
import type { BlobStore } from '@dllm/storage';
import { EngineHolder } from '../../core/engine-holder';
import { CONFIG, RESULT_STORE } from '../../core/tokens';
import { WorkerMetrics } from '../../core/worker-metrics';
import { HandBackError } from '../job-stop';
import { WorkerLifecycle } from '../lifecycle';

/** What the service needs from a BullMQ job (a real Job in production). */
export type GenerationJobLike = Pick<Job<GenerationPayload>, 'id' | 'data' | 'queueName' | 'timestamp' | 'updateProgress'>;

@Injectable()
export class GenerationService {
  private readonly logger = new Logger('Generation');

  constructor(
    private readonly engine: EngineHolder,
    private readonly metrics: WorkerMetrics,
    private readonly lifecycle: WorkerLifecycle,
    @Inject(RESULT_STORE) private readonly store: BlobStore,
    @Inject(CONFIG) private readonly config: Config,
  ) {}

  /**
   * Runs the job; throws UnrecoverableError for a payload or request this worker can never serve,
   * HandBackError when the worker's shutdown stopped it (JobHost returns it to the queue).
   */
  async run(job: GenerationJobLike): Promise<GenerationReturn> {
    const parsed = generationJob.safeParsePayload(job.data);
    if (!parsed.success)
      throw new UnrecoverableError(`invalid generation payload: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    const payload = parsed.data;
    const model = this.config.worker.model.name;
    if (payload.model !== model) throw new UnrecoverableError(`job for model '${payload.model}' reached the worker of '${model}'`);
    const jobId = String(job.id);
    // The same resolver the gateway ran: a request it accepted for this model version passes here;
    // one the current version cannot serve fails now, without retries, with the resolver's reasons.
    const verdict = resolveRequest(engineFacts(this.engine.engine), { prompt: payload.prompt, options: payload.options });
    if (!verdict.ok) throw new UnrecoverableError(`invalid request: ${describeIssues(verdict.errors)}`);
    const started = Date.now();
    this.metrics.queueWait.observe({ kind: 'generation', model }, Math.max(0, started - job.timestamp) / 1000);
    this.metrics.active.inc({ kind: 'generation' });
    const stop = await this.lifecycle.register(job.queueName, jobId);
    let progress: Promise<unknown> = Promise.resolve();
    try {
      let r;
      try {
        r = await this.engine.engine.generate(
          { prompt: payload.prompt, options: payload.options },
          {
            signal: stop.signal,
            onBlock: (e) => {
              const p: GenerationProgress = { blocks: e.index + 1, completionTokens: e.completionTokens, forwards: e.forwards, text: e.text };
              // In order, never blocking the engine; a lost progress event is not worth failing the job.
              progress = progress.then(() => job.updateProgress(p)).catch(() => undefined);
            },
          },
        );
      } catch (e) {
        // Bad options for this model (e.g. a diffusion policy on an AR model) will not get better on retry.
        if (e instanceof RangeError) throw new UnrecoverableError(e.message);
        throw e;
      }
      await progress;
      // Shutdown, not the client: give the job back so another worker runs it.
      if (r.finishReason === 'cancelled' && stop.handedBack()) throw new HandBackError(`job ${jobId}`);
      const result: GenerationResult = {
        text: r.text,
        tokenIds: r.tokenIds,
        finishReason: r.finishReason,
        usage: r.usage,
        stats: r.stats,
        model: r.model,
        ...(r.trajectory !== undefined ? { trajectory: r.trajectory } : {}),
      };
      const ref = await storeGenerationResult(this.store, job.queueName, jobId, result);
      this.metrics.jobs.inc({ kind: 'generation', model, outcome: r.finishReason });
      this.metrics.tokens.inc({ model, type: 'prompt' }, r.usage.promptTokens);
      this.metrics.tokens.inc({ model, type: 'completion' }, r.usage.completionTokens);
      this.metrics.forwards.inc({ model }, r.stats.forwards);
      if (r.stats.forwards > 0) this.metrics.tpf.observe({ model }, r.stats.tpf);
      this.metrics.latency.observe({ kind: 'generation', model }, (Date.now() - started) / 1000);
      return ref;
    } catch (e) {
      this.metrics.jobThrew(e, { kind: 'generation', model }, this.logger, `job ${jobId}`);
      throw e;
    } finally {
      stop.done();
      this.metrics.active.dec({ kind: 'generation' });
    }
  }
}

/** The resolver's model facts from the engine's current model (manifest + the engine's tokenizer). */
export function engineFacts(engine: Engine): ModelFacts {
  const { name, kind, manifest, decodeDefaults } = engine.model;
  return {
    name,
    kind,
    blockSize: manifest.block_size,
    maxPositions: manifest.architecture?.max_position_embeddings,
    vocabSize: manifest.vocab_size,
    tokenizer: engine.codec,
    decodeDefaults,
  };
}
