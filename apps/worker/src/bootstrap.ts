// Builds the worker: Nest application context (no HTTP stack), shutdown hooks, health server.
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext, LogLevel } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { Config } from '@dllm/config';
import { EngineHolder } from './core/engine-holder';
import { REDIS } from './core/tokens';
import { WorkerMetrics } from './core/worker-metrics';
import { startHealthServer } from './health/health-server';
import { WorkerLifecycle } from './jobs/lifecycle';
import { WorkerModule } from './worker.module';

export interface RunningWorker {
  app: INestApplicationContext;
  healthPort: number;
  lifecycle: WorkerLifecycle;
  /** Resolves when the model is loaded and the queues are running; rejects when loading failed. */
  started: Promise<void>;
  close(): Promise<void>;
}

/** Starts the worker (Nest context, health server); the queues start once the model is loaded (`started`). */
export async function startWorker(config: Config, opts: { logLevels?: LogLevel[]; shutdownHooks?: boolean } = {}): Promise<RunningWorker> {
  const app = await NestFactory.createApplicationContext(WorkerModule.forRoot(config), {
    logger: opts.logLevels ?? ['log', 'warn', 'error'],
    abortOnError: false,
  });
  // SIGTERM/SIGINT -> drain (beforeApplicationShutdown: every job finished or handed back) -> close
  // the engine (after its last forward), Redis -> exit 0. Without useProcessExit Nest re-raises the
  // signal once done, and a drained worker would look killed (143) to its supervisor.
  if (opts.shutdownHooks) app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });
  const lifecycle = app.get(WorkerLifecycle);
  const health = await startHealthServer(
    { engine: app.get(EngineHolder), lifecycle, redis: app.get<Redis>(REDIS), metrics: app.get(WorkerMetrics) },
    config.worker.host,
    config.worker.port,
  );
  let closing: Promise<void> | undefined;
  return {
    app,
    healthPort: health.port,
    lifecycle,
    started: lifecycle.started!,
    close: () =>
      (closing ??= (async () => {
        await app.close();
        await new Promise<void>((r) => health.close(() => r()));
      })()),
  };
}
