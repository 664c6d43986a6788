// Worker Prometheus metrics: jobs by outcome, tokens, forwards, TPF, job latency, and the engine's
// live state (batch, KV pool, prefix-cache hits) read at scrape time.
import { Injectable, type Logger } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { isHandBack } from '../jobs/job-stop';
import { EngineHolder } from './engine-holder';

@Injectable()
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly jobs = new Counter({
    name: 'dllm_worker_jobs_total',
    help: 'Jobs finished by this worker',
    labelNames: ['kind', 'model', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly tokens = new Counter({
    name: 'dllm_worker_tokens_total',
    help: 'Tokens processed',
    labelNames: ['model', 'type'] as const,
    registers: [this.registry],
  });
  readonly forwards = new Counter({
    name: 'dllm_worker_forwards_total',
    help: 'Model forwards attributed to jobs',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly tpf = new Histogram({
    name: 'dllm_worker_tokens_per_forward',
    help: 'Tokens per forward of each job',
    labelNames: ['model'] as const,
    buckets: [1, 1.5, 2, 3, 4, 6, 8, 12, 16, 32],
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'dllm_worker_job_seconds',
    help: 'Time from job start to result on this worker',
    labelNames: ['kind', 'model'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly queueWait = new Histogram({
    name: 'dllm_worker_queue_wait_seconds',
    help: 'Time from enqueue to job start',
    labelNames: ['kind', 'model'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300],
    registers: [this.registry],
  });
  readonly active = new Gauge({
    name: 'dllm_worker_active_jobs',
    help: 'Jobs running on this worker',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  /**
   * Counts and logs a job that threw: a hand-back (the worker's shutdown stopped it) is outcome `handed_back` and an info line, anything else outcome `error` and a warning
   * `<what> failed: <message>`.
   */
  jobThrew(e: unknown, labels: { kind: string; model: string }, logger: Logger, what: string): void {
    const handedBack = isHandBack(e);
    this.jobs.inc({ ...labels, outcome: handedBack ? 'handed_back' : 'error' });
    if (handedBack) logger.log((e as Error).message);
    else logger.warn(`${what} failed: ${(e as Error).message}`);
  }

  constructor(engine: EngineHolder) {
    collectDefaultMetrics({ register: this.registry, prefix: 'dllm_worker_' });
    const reg = this.registry;
    const stat = (name: string, help: string, read: (s: ReturnType<EngineHolder['engine']['stats']>) => number) =>
      new Gauge({
        name,
        help,
        registers: [reg],
        collect() {
          if (engine.ready) this.set(read(engine.engine.stats()));
        },
      });
    new Gauge({
      name: 'dllm_worker_model_loaded',
      help: '1 once the model is loaded',
      registers: [reg],
      collect() {
        this.set(engine.ready ? 1 : 0);
      },
    });
    stat('dllm_engine_active_sequences', 'Sequences decoding now', (s) => s.active);
    stat('dllm_engine_queued_sequences', 'Sequences waiting for KV reservation', (s) => s.queued);
    stat('dllm_engine_forwards', 'Batched forwards run by the engine', (s) => s.forwards);
    stat('dllm_engine_mean_batch_rows', 'Rows per forward (mean batch size)', (s) => (s.forwards ? s.rows / s.forwards : 0));
    stat('dllm_engine_kv_used_bytes', 'KV pool bytes in use', (s) => s.pool.usedBytes);
    stat('dllm_engine_kv_capacity_bytes', 'KV pool budget', (s) => s.pool.capacityBytes);
    stat('dllm_engine_kv_prefix_hits', 'Prefix-cache page hits', (s) => s.pool.hits);
    stat('dllm_engine_kv_prefix_misses', 'Prefix-cache page misses', (s) => s.pool.misses);
    stat('dllm_engine_kv_evictions', 'KV pages evicted', (s) => s.pool.evictions);
  }
}
