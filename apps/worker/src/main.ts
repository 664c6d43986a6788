// dllm-farm worker process: validated config -> model loaded -> queues resumed. SIGTERM/SIGINT
// (Nest shutdown hooks) drain for WORKER_DRAIN_TIMEOUT_MS and hand unfinished jobs back; a
// SIGKILL loses nothing either (BullMQ's stalled-job recovery gives the job to another worker).
import { loadConfigOrExit } from '@dllm/config';
import { startWorker } from './bootstrap';

/** Time allowed after the drain for closing queues, engine and Redis before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 5000;

async function main() {
  const config = loadConfigOrExit('worker');
  // Watchdog: the shutdown hooks drain for WORKER_DRAIN_TIMEOUT_MS, then close BullMQ and Redis;
  // closing waits for Redis, so a Redis that is away must not keep the process alive past that.
  let started = false;
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      // Still starting (e.g. waiting for Redis): no job runs yet, nothing to drain.
      if (!started) process.exit(0);
      setTimeout(() => {
        console.error(`worker: shutdown took over ${config.worker.drainTimeoutMs + SHUTDOWN_GRACE_MS} ms (${sig}); exiting anyway`);
        process.exit(1);
      }, config.worker.drainTimeoutMs + SHUTDOWN_GRACE_MS).unref();
    });
  }
  const w = await startWorker(config, { shutdownHooks: true });
  started = true;
  console.log(`worker health on http://${config.worker.host}:${w.healthPort} (model ${config.worker.model.name} from ${config.worker.model.dir})`);
  try {
    await w.started;
  } catch (e) {
    console.error(`worker: cannot load model ${config.worker.model.name} from ${config.worker.model.dir}: ${(e as Error).message}`);
    await w.close().catch(() => undefined);
    process.exit(1);
  }
  console.log(`worker ready: taking jobs (concurrency ${config.worker.concurrency})`);
  process.send?.({ ready: true, healthPort: w.healthPort });
}

main().catch((e: Error) => {
  console.error(`worker: ${e.message}`);
  process.exit(1);
});
