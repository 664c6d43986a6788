// dllm-farm worker process: validated config -> model loaded -> queues resumed. SIGTERM/SIGINT
// (Nest shutdown hooks) drain for WORKER_DRAIN_TIMEOUT_MS and hand unfinished jobs back; a
// SIGKILL loses nothing either (BullMQ's stalled-job recovery gives the job to another worker).
import { loadConfigOrExit } from '@dllm/config';
import { startWorker } from './bootstrap';

async function main() {
  const config = loadConfigOrExit('worker');
  const w = await startWorker(config, { shutdownHooks: true });
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
