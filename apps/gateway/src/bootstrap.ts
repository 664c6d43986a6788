// Builds the gateway application (used by main.ts, the e2e tests and the benchmark).
import 'reflect-metadata';
import type { LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { Redis } from 'ioredis';
import { ApiKeyRing } from './auth/api-keys';
import { registerMultipart } from './batches/multipart';
import { GatewayModule } from './gateway.module';
import { checkBody, refuseBody } from './http/body-policy';
import { MetricsService } from './metrics/metrics.service';
import { namedSchemas } from './openapi/zod-openapi';
import type { GatewaySettings } from './settings';
import { REDIS } from './tokens';

/** Fastify with BODY_LIMIT_BYTES as the (streamed) limit of every parsed body. */
export function createAdapter(settings: Pick<GatewaySettings, 'bodyLimitBytes'>): FastifyAdapter {
  return new FastifyAdapter({ bodyLimit: settings.bodyLimitBytes, logger: false, return503OnClosing: true });
}

/** The OpenAPI document, deterministic (keys sorted) so docs/openapi.json diffs cleanly. */
export function buildOpenApi(app: NestFastifyApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('dllm-farm gateway')
    .setDescription(
      "OpenAI-compatible completions, batches and files, plus native jobs, for block-diffusion LMs. Errors use OpenAI's shape {error:{message,type,param,code}}. A key that lacks one of an operation's x-required-scopes gets 403 (code insufficient_scope).",
    )
    .setVersion('0.1.0')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'API key' })
    .build();
  const doc = SwaggerModule.createDocument(app, config);
  doc.components = { ...doc.components, schemas: { ...doc.components?.schemas, ...namedSchemas() } };
  return sortKeys(doc) as OpenAPIObject;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

export async function createGateway(
  settings: GatewaySettings,
  opts: { logLevels?: LogLevel[]; preview?: boolean; docsUi?: boolean } = {},
): Promise<NestFastifyApplication> {
  const adapter = createAdapter(settings);
  const app = await NestFactory.create<NestFastifyApplication>(GatewayModule.forRoot(settings), adapter, {
    logger: opts.logLevels ?? ['error', 'warn', 'log'],
    preview: opts.preview,
    abortOnError: false,
  });
  const fastify = app.getHttpAdapter().getInstance();
  // Before any body is read: a valid key, an accepted Content-Type, a declared length within the
  // route's limit (http/body-policy.ts). Everything else about the key (scopes, rate) is the guard's.
  const keys = app.get(ApiKeyRing);
  const limits = { jsonBytes: settings.bodyLimitBytes, fileBytes: settings.fileLimitBytes };
  fastify.addHook('onRequest', (req, reply, done) => {
    const refusal = checkBody(req, keys, limits);
    if (refusal) {
      void refuseBody(reply, refusal);
      return;
    }
    done();
  });
  // Uploads (POST /v1/files, model versions) are streamed part by part (batches/multipart.ts).
  await registerMultipart(fastify as never, settings.fileLimitBytes);
  // Errors Fastify raises itself (body limits, malformed JSON) reach Nest's error handler and through it
  // the global OpenAiErrorFilter (http/error.filter.ts): no second handler here (Fastify's FSTWRN004).
  if (!opts.preview) {
    const metrics = app.get(MetricsService);
    fastify.addHook('onResponse', (req, reply, done) => {
      metrics.requests.inc({ route: req.routeOptions?.url ?? 'unmatched', status: String(reply.statusCode) });
      done();
    });
    app.enableShutdownHooks();
  }
  // Swagger UI needs @fastify/static, which jest cannot load in-process (ESM dependency): tests pass docsUi: false.
  if (!opts.preview) SwaggerModule.setup('docs', app, () => buildOpenApi(app), { jsonDocumentUrl: 'docs/openapi.json', ui: opts.docsUi ?? true });
  return app;
}

export async function startGateway(settings: GatewaySettings, opts: { logLevels?: LogLevel[]; docsUi?: boolean } = {}): Promise<NestFastifyApplication> {
  const app = await createGateway(settings, opts);
  // Give Redis a moment to connect so the first requests are not refused; never wait longer: a
  // gateway without Redis still starts, answers /healthz, says not ready, and 503s what needs Redis.
  await redisReady(app.get<Redis>(REDIS), 2000);
  await app.listen(settings.port, settings.host);
  return app;
}

/** Resolves when the client is ready or after `ms`, whichever comes first. */
function redisReady(redis: Redis, ms: number): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      redis.off('ready', done);
      resolve();
    }
    redis.once('ready', done);
  });
}

export { REDIS, Redis };
