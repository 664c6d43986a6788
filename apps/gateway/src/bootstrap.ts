// Builds the gateway application (used by main.ts, the e2e tests and the benchmark).
import 'reflect-metadata';
import type { LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { Redis } from 'ioredis';
import { GatewayModule } from './gateway.module';
import { MetricsService } from './metrics/metrics.service';
import { namedSchemas } from './openapi/zod-openapi';
import type { GatewaySettings } from './settings';
import { REDIS } from './tokens';

export const MULTIPART = 'multipart/form-data';

export function createAdapter(settings: Pick<GatewaySettings, 'bodyLimitBytes'>): FastifyAdapter {
  return new FastifyAdapter({ bodyLimit: settings.bodyLimitBytes, logger: false, return503OnClosing: true });
}

/** The OpenAPI document, deterministic (keys sorted) so docs/openapi.json diffs cleanly. */
export function buildOpenApi(app: NestFastifyApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('dllm-farm gateway')
    .setDescription('OpenAI-compatible completions, batches and files, plus native jobs, for block-diffusion LMs. Errors use OpenAI\'s shape {error:{message,type,param,code}}. A key that lacks one of an operation\'s x-required-scopes gets 403 (code insufficient_scope).')
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
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  }
  return v;
}

export async function createGateway(settings: GatewaySettings, opts: { logLevels?: LogLevel[]; preview?: boolean; docsUi?: boolean } = {}): Promise<NestFastifyApplication> {
  const adapter = createAdapter(settings);
  const app = await NestFactory.create<NestFastifyApplication>(GatewayModule.forRoot(settings), adapter, {
    logger: opts.logLevels ?? ['error', 'warn', 'log'],
    preview: opts.preview,
    abortOnError: false,
  });
  const fastify = app.getHttpAdapter().getInstance();
  // Uploads (POST /v1/files): the raw multipart body, parsed by the files controller, with its own limit.
  fastify.addContentTypeParser(MULTIPART, { parseAs: 'buffer', bodyLimit: settings.fileLimitBytes }, (_req, body, done) => done(null, body));
  // JSONL uploads sent raw are accepted too.
  fastify.addContentTypeParser(['application/jsonl', 'application/x-ndjson', 'text/plain'], { parseAs: 'buffer', bodyLimit: settings.fileLimitBytes }, (_req, body, done) => done(null, body));
  // No fastify.setErrorHandler here: Nest installs its own at init (routes-resolver registerExceptionHandler),
  // which replaced one set here (fastify warned FSTWRN004 on every start). Fastify's errors (body limits,
  // content types, bad JSON) reach OpenAiErrorFilter through it and become the OpenAI error shape there.
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
  await app.listen(settings.port, settings.host);
  return app;
}

export { REDIS, Redis };
