// Every error the gateway returns has OpenAI's shape: {error: {message, type, param, code}}.
// ApiError carries the HTTP status; the exception filter turns anything else into one.
import type { ZodError } from 'zod';
import type { ApiErrorBody } from '@dllm/contracts';

const TYPE_BY_STATUS: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  409: 'conflict_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  422: 'invalid_request_error',
  429: 'rate_limit_error',
  503: 'service_unavailable',
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get type(): string {
    return TYPE_BY_STATUS[this.status] ?? (this.status >= 500 ? 'server_error' : 'invalid_request_error');
  }

  body(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  static notFound(what: string, id: string): ApiError {
    return new ApiError(404, `No ${what} found with id '${id}'.`, 'not_found', null);
  }
}

/** Zod issues -> one 422 with the first issue's path as `param` and every issue in the message. */
export function fromZodError(err: ZodError, rename: (path: string) => string = (p) => p): ApiError {
  const parts = err.issues.slice(0, 5).map((i) => {
    const path = rename(i.path.map(String).join('.'));
    return path ? `${path}: ${i.message}` : i.message;
  });
  const first = err.issues[0];
  const param = first && first.path.length ? rename(first.path.map(String).join('.')) : null;
  const more = err.issues.length > 5 ? ` (and ${err.issues.length - 5} more)` : '';
  return new ApiError(422, `Invalid request: ${parts.join('; ')}${more}`, 'invalid_value', param);
}

/** Seconds a client is asked to wait (Retry-After) when Redis is unreachable. */
export const REDIS_RETRY_AFTER_S = 5;

/** 503 + Retry-After: the request needs Redis and Redis does not answer (readiness is false meanwhile). */
export function redisUnavailable(): ApiError {
  const headers = { 'retry-after': String(REDIS_RETRY_AFTER_S) };
  return new ApiError(503, 'The gateway cannot reach Redis right now; retry shortly.', 'redis_unavailable', null, headers);
}
