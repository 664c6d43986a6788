// Redis connections for BullMQ and our own keys. BullMQ workers need maxRetriesPerRequest: null
// (blocking commands must wait out reconnects instead of failing).
import { Redis, type RedisOptions } from 'ioredis';

export function createRedis(url: string, name: string, extra: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, connectionName: name, ...extra });
}

/** Pings with a timeout; for readiness probes. */
export async function pingRedis(redis: Redis, timeoutMs = 1000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([redis.ping(), new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error('timeout')), timeoutMs)))]);
    return r === 'PONG';
  } catch {
    return false;
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** ioredis options from a redis:// or rediss:// URL, for BullMQ's `connection` (it makes its own clients). */
export function redisOptionsFromUrl(url: string): RedisOptions {
  const u = new URL(url);
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    db: Number.isInteger(db) ? db : 0,
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  };
}
