import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PendingWorkReading } from '@dllm/queue';

export interface QueueDepthSource {
  /** name -> BullMQ job counts (waiting, active, delayed, prioritized, completed, failed...). */
  depths(): Promise<Record<string, Record<string, number>>>;
}

/** Prometheus metrics of one gateway process (scraped at GET /metrics). */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();
  private depthSource?: QueueDepthSource;
  private pendingSource?: { read(): Promise<PendingWorkReading[]> };

  readonly requests = new Counter({
    name: 'dllm_gateway_requests_total',
    help: 'HTTP requests by route and status code',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  readonly jobLatency = new Histogram({
    name: 'dllm_job_latency_seconds',
    help: 'Enqueue-to-result latency of generation jobs seen by this gateway',
    labelNames: ['model', 'endpoint'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly tokens = new Counter({
    name: 'dllm_tokens_total',
    help: 'Tokens processed, by model and kind (prompt, completion)',
    labelNames: ['model', 'kind'] as const,
    registers: [this.registry],
  });
  readonly forwards = new Counter({
    name: 'dllm_forwards_total',
    help: 'Model forward passes spent on finished jobs',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly tpf = new Histogram({
    name: 'dllm_tokens_per_forward',
    help: 'Committed tokens per forward pass per finished job (TPF)',
    labelNames: ['model'] as const,
    buckets: [0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 16],
    registers: [this.registry],
  });
  readonly jobsEnqueued = new Counter({
    name: 'dllm_jobs_enqueued_total',
    help: 'Generation jobs enqueued by this gateway, by endpoint',
    labelNames: ['endpoint'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'dllm_gateway_' });
    const self = this;
    new Gauge({
      name: 'dllm_queue_jobs',
      help: 'Jobs per queue and state (waiting + prioritized + delayed is the real pending work)',
      labelNames: ['queue', 'state'] as const,
      registers: [this.registry],
      async collect() {
        if (!self.depthSource) return;
        const all = await self.depthSource.depths();
        for (const [queue, counts] of Object.entries(all)) {
          for (const [state, n] of Object.entries(counts)) this.set({ queue, state }, n);
        }
      },
    });
    // What queue-driven autoscaling follows (deploy/k8s: KEDA prometheus trigger). Redis-wide: every
    // replica reports the same value, so queries take max() over replicas.
    new Gauge({
      name: 'dllm_pending_forward_passes',
      help: 'Expected forward passes (per sequence) of waiting + prioritized + delayed + active jobs, by queue; TPF measured from recently completed jobs',
      labelNames: ['queue', 'model'] as const,
      registers: [this.registry],
      async collect() {
        if (!self.pendingSource) return;
        for (const r of await self.pendingSource.read()) this.set({ queue: r.queue, model: r.model }, r.forwards);
      },
    });
  }

  setPendingWork(src: { read(): Promise<PendingWorkReading[]> }): void {
    this.pendingSource = src;
  }

  setDepthSource(src: QueueDepthSource): void {
    this.depthSource = src;
  }

  observeResult(
    model: string,
    endpoint: string,
    r: { promptTokens: number; completionTokens: number; forwards: number; tpf: number; latencyMs: number },
  ): void {
    this.tokens.inc({ model, kind: 'prompt' }, r.promptTokens);
    this.tokens.inc({ model, kind: 'completion' }, r.completionTokens);
    this.forwards.inc({ model }, r.forwards);
    if (r.forwards > 0) this.tpf.observe({ model }, r.tpf);
    this.jobLatency.observe({ model, endpoint }, r.latencyMs / 1000);
  }
}
