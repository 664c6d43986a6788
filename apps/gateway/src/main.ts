// dllm-farm gateway process: validated config -> Nest app on Fastify -> listen.
import { startGateway } from './bootstrap';
import { loadConfigOrExit } from '@dllm/config';
import { settingsFromConfig } from './settings';

/** Longest a SIGTERM/SIGINT shutdown may take before the process exits anyway. */
const SHUTDOWN_DEADLINE_MS = 5000;

async function main() {
  const settings = settingsFromConfig(loadConfigOrExit('gateway'));
  if (settings.apiKeys.length === 0) console.warn('gateway: API_KEYS is empty; every request will get 401 (see docs/CONFIG.md)');
  const app = await startGateway(settings);
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  const port = Number(new URL(url).port);
  console.log(`gateway listening on ${url} (models: ${settings.models.map((m) => m.name).join(', ')})`);
  process.send?.({ ready: true, port });
  // SIGTERM/SIGINT: close (drains HTTP, closes queues and Redis), bounded so that a Redis that is
  // away cannot keep the process alive.
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => {
      console.error(`gateway: shutdown took over ${SHUTDOWN_DEADLINE_MS} ms; exiting anyway`);
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS).unref();
    void app.close().then(
      () => process.exit(0),
      (e: Error) => {
        console.error(`gateway: shutdown: ${e.message}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

void main();
