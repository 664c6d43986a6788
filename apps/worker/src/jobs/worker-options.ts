// BullMQ worker options from config, shared by every job-kind module.
import type { WorkerOptions } from 'bullmq';
import type { Config } from '@dllm/config';

export function workerOptions(config: Config, concurrency = config.worker.concurrency): Partial<WorkerOptions> {
  const w = config.worker;
  const r = config.retention;
  return {
    // Start paused: WorkerLifecycle calls run() once the model is loaded.
    autorun: false,
    name: w.name,
    concurrency,
    lockDuration: w.lockDurationMs,
    stalledInterval: w.stalledIntervalMs,
    maxStalledCount: w.maxStalledCount,
    // Fallback retention for jobs added without their own (the gateway sets them per job).
    removeOnComplete: { count: r.completed.count, age: r.completed.ageSeconds },
    removeOnFail: { count: r.failed.count, age: r.failed.ageSeconds },
  };
}
