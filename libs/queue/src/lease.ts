import type { Redis } from 'ioredis';

/**
 * Runs `fn` only if this process wins a Redis lease (`SET key NX PX ttlMs`); returns whether it ran.
 * For periodic housekeeping that every replica schedules but one should do per period (sweeping a
 * bucket lists every object). The lease is not released after the run: it expires, so the next
 * period's first caller takes it.
 */
export async function withLease(redis: Redis, key: string, ttlMs: number, fn: () => Promise<unknown>): Promise<boolean> {
  const owner = `${process.pid}:${Math.random().toString(36).slice(2)}`;
  const won = await redis.set(key, owner, 'PX', Math.max(1, Math.floor(ttlMs)), 'NX');
  if (won !== 'OK') return false;
  await fn();
  return true;
}
