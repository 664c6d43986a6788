// An in-process gateway for e2e tests that need no worker: the bundled tiny-dllm and tiny-ar models'
// directories (so the request resolver has their facts), one API key with every scope, a private
// queue prefix, no rate limit, 1 MiB bodies, and no batch sweeper.
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import * as path from 'node:path';
import { ALL_API_SCOPES } from '@dllm/config';
import { hashApiKey } from '../../apps/gateway/src/auth/api-keys';
import { startGateway } from '../../apps/gateway/src/bootstrap';

/** The bundled models a test gateway serves, by name. */
export const BUNDLED_MODELS = { dllm: 'tiny-dllm', ar: 'tiny-ar' } as const;

export interface TestGateway {
  app: NestFastifyApplication;
  /** http://127.0.0.1:<port> */
  base: string;
}

/**
 * Starts the gateway on a free port.
 * @param o.tag queue prefix (its key prefix is `<tag>:gw:`); unique per test file
 * @param o.apiKey the one key (named after its text), every scope
 * @param o.storageDir STORAGE_DIR
 * @param o.modelRoots MODEL_ROOTS (default: STORAGE_DIR/models and the bundled models' folder)
 * @param o.readerKey a second key with every scope but models:write (named after its text)
 * @param o.models the served models (default: the bundled tiny-dllm and tiny-ar)
 */
export async function startTestGateway(o: {
  tag: string;
  apiKey: string;
  storageDir: string;
  redisUrl: string;
  modelRoots?: string[];
  readerKey?: string;
  models?: { name: string; dir: string }[];
}): Promise<TestGateway> {
  const root = path.resolve(__dirname, '../..');
  const app = await startGateway(
    {
      host: '127.0.0.1',
      port: 0,
      redisUrl: o.redisUrl,
      queuePrefix: o.tag,
      keyPrefix: `${o.tag}:gw:`,
      apiKeys: [
        { name: o.apiKey.replace(/^sk-/, ''), sha256: hashApiKey(o.apiKey) },
        ...(o.readerKey
          ? [{ name: o.readerKey.replace(/^sk-/, ''), sha256: hashApiKey(o.readerKey), scopes: ALL_API_SCOPES.filter((s) => s !== 'models:write') }]
          : []),
      ],
      rateLimit: { requests: 0, windowMs: 1000 },
      bodyLimitBytes: 1 << 20,
      fileLimitBytes: 1 << 20,
      models: o.models ?? Object.values(BUNDLED_MODELS).map((name) => ({ name, dir: path.join(root, 'models', name) })),
      storageDir: o.storageDir,
      modelRoots: o.modelRoots,
      batch: { maxLines: 100, sweepMs: 0, allowShortWindows: false },
      requestTimeoutMs: 3000,
      retentionSeconds: 600,
    },
    { docsUi: false, logLevels: ['error'] },
  );
  return { app, base: (await app.getUrl()).replace('[::1]', '127.0.0.1') };
}
