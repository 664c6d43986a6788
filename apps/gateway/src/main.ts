// dllm-farm gateway process: validated config -> Nest app on Fastify -> listen.
import { startGateway } from './bootstrap';
import { loadConfigOrExit } from '@dllm/config';
import { settingsFromConfig } from './settings';

async function main() {
  const settings = settingsFromConfig(loadConfigOrExit('gateway'));
  if (settings.apiKeys.length === 0) console.warn('gateway: API_KEYS is empty; every request will get 401 (see docs/CONFIG.md)');
  const app = await startGateway(settings);
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  const port = Number(new URL(url).port);
  console.log(`gateway listening on ${url} (models: ${settings.models.map((m) => m.name).join(', ')})`);
  process.send?.({ ready: true, port });
  const stop = () => {
    void app.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

void main();
