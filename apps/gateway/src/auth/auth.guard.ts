import { applyDecorators, CanActivate, ExecutionContext, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiExtension } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiScope } from '@dllm/config';
import type { Redis } from 'ioredis';
import { ApiError, redisUnavailable } from '../http/api-error';
import { REDIS } from '../tokens';
import { ApiKeyRing, presentedKey } from './api-keys';
import { RateLimiter } from './rate-limiter';

const PUBLIC = 'dllm:public';
const SCOPES = 'dllm:scopes';

/** Routes anyone may call (health, metrics, docs). */
export const Public = () => SetMetadata(PUBLIC, true);

/**
 * The scopes a key needs for a controller's routes (or one route; the route's own list wins).
 * `@Scopes()` with none declares "any valid key". Every non-public route declares one or the other
 * (a unit test checks), and the list shows in the OpenAPI document as `x-required-scopes`.
 */
export const Scopes = (...scopes: ApiScope[]) => applyDecorators(SetMetadata(SCOPES, scopes), ApiExtension('x-required-scopes', scopes));

/** What a handler (or its class) declared: public, the scopes it needs, or nothing (undefined). */
export function declaredAccess(reflector: Reflector, handler: Function, cls: Function): { public: boolean; scopes: ApiScope[] | undefined } {
  return {
    public: !!reflector.getAllAndOverride<boolean>(PUBLIC, [handler, cls]),
    scopes: reflector.getAllAndOverride<ApiScope[] | undefined>(SCOPES, [handler, cls]),
  };
}

/** A request the guard let through: `owner` is the key's name, `scopes` what that key may do. */
export type AuthedRequest = FastifyRequest & { owner: string; scopes?: ReadonlySet<ApiScope> };

@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly keys: ApiKeyRing,
    @Inject(RateLimiter) private readonly limiter: RateLimiter,
    @Inject(REDIS) private readonly redis: Redis,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const access = declaredAccess(this.reflector, ctx.getHandler(), ctx.getClass());
    if (access.public) return true;
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    const reply = ctx.switchToHttp().getResponse<FastifyReply>();
    const secret = presentedKey(req.headers);
    if (!secret) {
      throw new ApiError(401, 'Missing API key: send `Authorization: Bearer <key>`.', 'missing_api_key');
    }
    const key = this.keys.identify(secret);
    if (!key) throw new ApiError(401, 'Incorrect API key provided.', 'invalid_api_key');
    const owner = key.name;
    // Every route behind a key needs Redis (rate limit, queues, records): say so at once while it is away.
    if (this.redis.status !== 'ready') throw redisUnavailable();
    // Every authenticated request counts, refused ones too: probing routes is not free.
    const d = await this.limiter.check(owner);
    if (d.limit > 0) {
      void reply.header('x-ratelimit-limit-requests', String(d.limit));
      void reply.header('x-ratelimit-remaining-requests', String(d.remaining));
    }
    if (!d.allowed) {
      throw new ApiError(429, `Rate limit reached for key '${owner}': ${d.limit} requests per ${this.limiter.windowMs} ms.`, 'rate_limit_exceeded', null, {
        'retry-after': String(Math.max(1, Math.ceil(d.resetMs / 1000))),
      });
    }
    const missing = (access.scopes ?? []).filter((s) => !key.scopes.has(s));
    if (missing.length) {
      const route = `${req.method} ${req.routeOptions?.url ?? req.url.split('?')[0]}`;
      throw new ApiError(
        403,
        `API key '${owner}' lacks the scope${missing.length > 1 ? 's' : ''} ${missing.map((s) => `'${s}'`).join(', ')} required for ${route} (its scopes: ${[...key.scopes].join(', ') || 'none'}).`,
        'insufficient_scope',
      );
    }
    req.owner = owner;
    req.scopes = key.scopes;
    return true;
  }
}
