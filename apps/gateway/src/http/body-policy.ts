// What a route may receive, decided before a byte of the body is read (Fastify `onRequest`):
//   1. a body is only read from a caller with a valid API key (401 otherwise, connection closed);
//   2. its Content-Type must be on the route's allow-list (415), `application/json` unless the
//      route says otherwise with @Accepts(...);
//   3. a declared Content-Length over the route's limit is refused at once (413); a chunked body is
//      cut off while it streams: Fastify's `bodyLimit` for JSON, busboy's per-part limits for
//      multipart (libs: @fastify/multipart, see multipart.ts).
// Scopes and rate limits are still the AuthGuard's job (it runs after routing, with Nest metadata).
import { applyDecorators } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import { ApiConsumes } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type ApiKeyRing, presentedKey } from '../auth/api-keys';
import { ApiError } from './api-error';

export const JSON_TYPE = 'application/json';
export const MULTIPART_TYPE = 'multipart/form-data';

/** Most files one multipart request may carry (a model upload has four). */
export const MAX_UPLOAD_FILES = 4;
/** Headroom for multipart boundaries, part headers and small fields, on top of the files themselves. */
const MULTIPART_OVERHEAD_BYTES = 1 << 20;

interface BodyRouteConfig {
  accepts?: readonly string[];
}

/**
 * The media types a route accepts in its body (default: application/json only). Also documents
 * them in the OpenAPI operation (`requestBody.content`).
 */
export const Accepts = (...types: string[]) => applyDecorators(RouteConfig({ accepts: types } satisfies BodyRouteConfig), ApiConsumes(...types));

/** `type/subtype` of a Content-Type header, lower-cased, parameters dropped; '' when absent. */
export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0].trim().toLowerCase();
}

/** Whether the request announces a body (Content-Length > 0 or a Transfer-Encoding). */
export function hasBody(req: Pick<FastifyRequest, 'headers'>): boolean {
  const len = req.headers['content-length'];
  if (req.headers['transfer-encoding'] !== undefined) return true;
  return len !== undefined && len !== '0';
}

export interface BodyLimits {
  /** JSON bodies (BODY_LIMIT_BYTES). */
  jsonBytes: number;
  /** Each uploaded file (FILE_LIMIT_BYTES). */
  fileBytes: number;
}

/**
 * The onRequest check: returns the ApiError to answer with, or undefined to go on. Pure (no I/O)
 * so the order of the three refusals is unit-tested.
 */
export type BodyRequest = Pick<FastifyRequest, 'headers' | 'method'> & { routeOptions?: { config?: unknown; url?: string } };

export function checkBody(req: BodyRequest, keys: ApiKeyRing, limits: BodyLimits): ApiError | undefined {
  if (!hasBody(req)) return undefined;
  const secret = presentedKey(req.headers);
  if (!secret) return new ApiError(401, 'Missing API key: send `Authorization: Bearer <key>`.', 'missing_api_key');
  if (!keys.identify(secret)) return new ApiError(401, 'Incorrect API key provided.', 'invalid_api_key');
  const accepts = (req.routeOptions?.config as BodyRouteConfig | undefined)?.accepts ?? [JSON_TYPE];
  const type = mediaType(req.headers['content-type']);
  if (!accepts.includes(type)) {
    return new ApiError(
      415,
      `Content-Type '${type || '(none)'}' is not accepted by ${req.method} ${req.routeOptions?.url ?? 'this route'}; ` + `send ${accepts.join(' or ')}.`,
      'unsupported_media_type',
    );
  }
  const limit = type === MULTIPART_TYPE ? MAX_UPLOAD_FILES * limits.fileBytes + MULTIPART_OVERHEAD_BYTES : limits.jsonBytes;
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    const which = type === MULTIPART_TYPE ? `${MAX_UPLOAD_FILES} files of FILE_LIMIT_BYTES=${limits.fileBytes}` : `BODY_LIMIT_BYTES=${limits.jsonBytes}`;
    return new ApiError(413, `Request body too large: ${declared} bytes, over the limit (${which}).`, 'request_too_large');
  }
  return undefined;
}

/**
 * Answers a refusal without reading the body: `Connection: close` makes Node end the socket after
 * the answer instead of draining what the client is still sending.
 */
export function refuseBody(reply: FastifyReply, err: ApiError): FastifyReply {
  for (const [k, v] of Object.entries(err.headers)) void reply.header(k, v);
  return reply.status(err.status).header('connection', 'close').header('content-type', 'application/json; charset=utf-8').send(err.body());
}
