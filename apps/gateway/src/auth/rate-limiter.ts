import type { Redis } from 'ioredis';

export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  resetMs: number;
}

const INCR_WITH_TTL = `local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n`;

/**
 * Per-key fixed-window limit kept in Redis so every gateway replica shares one budget:
 * one INCR (+ PEXPIRE on the first hit) round trip per request. limit <= 0 disables it.
 */
export class RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly limit: number,
    readonly windowMs: number,
  ) {
    // ioredis sends a defined command as EVALSHA (script text only once per connection, on NOSCRIPT)
    if (typeof (redis as unknown as Record<string, unknown>).dllmIncrWithTtl !== 'function') {
      redis.defineCommand('dllmIncrWithTtl', { numberOfKeys: 1, lua: INCR_WITH_TTL });
    }
  }

  async check(owner: string, now = Date.now()): Promise<RateDecision> {
    if (this.limit <= 0) return { allowed: true, limit: 0, remaining: 0, resetMs: 0 };
    const window = Math.floor(now / this.windowMs);
    const key = `${this.prefix}rl:${owner}:${window}`;
    // One EVALSHA instead of a MULTI pipeline: the cheapest round trip per request.
    const incr = (this.redis as unknown as { dllmIncrWithTtl(key: string, ttlMs: number): Promise<number> }).dllmIncrWithTtl;
    const count = Number(await incr.call(this.redis, key, this.windowMs * 2));
    const resetMs = (window + 1) * this.windowMs - now;
    return { allowed: count <= this.limit, limit: this.limit, remaining: Math.max(0, this.limit - count), resetMs };
  }
}
