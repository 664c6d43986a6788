import { CanActivate, ExecutionContext, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../http/api-error';
import { ApiKeyRing, presentedKey } from './api-keys';
import { RateLimiter } from './rate-limiter';

const PUBLIC = 'dllm:public';
/** Routes anyone may call (health, metrics, docs). */
export const Public = () => SetMetadata(PUBLIC, true);

export type AuthedRequest = FastifyRequest & { owner: string };

@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly keys: ApiKeyRing,
    @Inject(RateLimiter) private readonly limiter: RateLimiter,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, [ctx.getHandler(), ctx.getClass()])) return true;
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    const reply = ctx.switchToHttp().getResponse<FastifyReply>();
    const secret = presentedKey(req.headers);
    if (!secret) {
      throw new ApiError(401, 'Missing API key: send `Authorization: Bearer <key>`.', 'missing_api_key');
    }
    const owner = this.keys.owner(secret);
    if (!owner) throw new ApiError(401, 'Incorrect API key provided.', 'invalid_api_key');
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
    req.owner = owner;
    return true;
  }
}
