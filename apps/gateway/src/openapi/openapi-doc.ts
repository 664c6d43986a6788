import type { OpenAPIObject } from '@nestjs/swagger';
import { buildOpenApi, createGateway } from '../bootstrap';
import type { GatewaySettings } from '../settings';

/** Settings for building the document only (preview mode: no provider runs, nothing connects). */
const DOC_SETTINGS: GatewaySettings = {
  host: '127.0.0.1',
  port: 0,
  redisUrl: 'redis://127.0.0.1:1',
  queuePrefix: 'bull',
  keyPrefix: 'doc:',
  apiKeys: [],
  rateLimit: { requests: 0, windowMs: 1000 },
  bodyLimitBytes: 1 << 20,
  fileLimitBytes: 1 << 20,
  models: [{ name: 'tiny-dllm' }],
  storageDir: '/nonexistent',
  batch: { maxLines: 1, sweepMs: 0, allowShortWindows: false },
  requestTimeoutMs: 1000,
  retentionSeconds: 1,
};

/** The gateway's OpenAPI document as committed in docs/openapi.json. */
export async function openApiText(): Promise<string> {
  const app = await createGateway(DOC_SETTINGS, { preview: true, logLevels: ['error'] });
  const doc: OpenAPIObject = buildOpenApi(app);
  await app.close();
  return `${JSON.stringify(doc, null, 2)}\n`;
}
