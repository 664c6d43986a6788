import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isRedisUnavailable } from '@dllm/queue';
import { ApiError, redisUnavailable } from './api-error';

/** Fastify's own errors (body parsing, limits) -> ApiError. */
export function fromFastifyError(err: { code?: string; statusCode?: number; message?: string }): ApiError | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, 'Request body too large (see BODY_LIMIT_BYTES / FILE_LIMIT_BYTES).', 'request_too_large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, `Unsupported Content-Type: ${err.message ?? ''}`.trim(), 'unsupported_media_type');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError(400, 'Empty JSON body.', 'invalid_json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError(400, 'Content-Length does not match the body.', 'invalid_body');
  }
  if (err instanceof SyntaxError || (/JSON/i.test(err.message ?? '') && (err.statusCode ?? 400) === 400)) {
    return new ApiError(400, `Malformed JSON body: ${err.message}`, 'invalid_json');
  }
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return new ApiError(err.statusCode, err.message ?? 'Bad request');
  return undefined;
}

export function toApiError(exception: unknown, logger?: Logger): ApiError {
  if (exception instanceof ApiError) return exception;
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const res = exception.getResponse();
    const message = typeof res === 'string' ? res : ((res as { message?: string | string[] }).message ?? exception.message);
    if (status === 404) return new ApiError(404, `Unknown route: ${Array.isArray(message) ? message.join('; ') : message}`, 'unknown_route');
    const text = Array.isArray(message) ? message.join('; ') : String(message);
    const code = status === 413 ? 'request_too_large' : status === 400 && /JSON/.test(text) ? 'invalid_json' : status === 415 ? 'unsupported_media_type' : null;
    return new ApiError(status, status === 413 ? `${text} (limit: BODY_LIMIT_BYTES for JSON, FILE_LIMIT_BYTES for uploads).` : text, code);
  }
  if (isRedisUnavailable(exception)) return redisUnavailable();
  const fastify = exception && typeof exception === 'object' ? fromFastifyError(exception as never) : undefined;
  if (fastify) return fastify;
  logger?.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
  return new ApiError(500, 'Internal error; see the gateway log.', 'internal_error');
}

export function sendApiError(reply: FastifyReply, err: ApiError): void {
  if (reply.sent || reply.raw.headersSent) {
    // Mid-stream (SSE): the best we can do is an error event and close.
    if (!reply.raw.writableEnded) {
      reply.raw.write(`data: ${JSON.stringify(err.body())}\n\n`);
      reply.raw.end();
    }
    return;
  }
  for (const [k, v] of Object.entries(err.headers)) reply.header(k, v);
  void reply.status(err.status).header('content-type', 'application/json; charset=utf-8').send(err.body());
}

@Catch()
export class OpenAiErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('Gateway');
  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const reply = ctx.getResponse<FastifyReply>();
    const req = ctx.getRequest<FastifyRequest>();
    const err = toApiError(exception, this.logger);
    // Redis being away was said once by the connection reporter; every refused request need not repeat it.
    if (err.status >= 500 && err.code !== 'redis_unavailable') this.logger.error(`${req.method} ${req.url}: ${err.message}`);
    sendApiError(reply, err);
  }
}
