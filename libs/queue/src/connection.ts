// Redis connections for BullMQ and our own keys. BullMQ workers need maxRetriesPerRequest: null
// (blocking commands must wait out reconnects instead of failing).
import { Redis, type RedisOptions } from 'ioredis';

/**
 * An ioredis client for `url` (REDIS_URL). Defaults to maxRetriesPerRequest: null (commands wait
 * out reconnects); its connection errors are reported by reportRedisState (one line per outage,
 * not one stack trace per retry).
 */
export function createRedis(url: string, name: string, extra: RedisOptions = {}, log: (line: string) => void = console.error): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, connectionName: name, ...extra });
  reportRedisState(client, url, name, log);
  return client;
}

/** The URL with its password (and a user name) replaced by `***`, for logs and error messages. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    else if (u.username) u.username = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(unparsable REDIS_URL)';
  }
}

/** Redis URLs this process currently sees as unreachable (shared by all its clients: one line per outage). */
const unreachable = new Set<string>();

/**
 * Turns a client's connection errors into one line when Redis becomes unreachable and one when it
 * answers again (every client of the same URL in the process shares the state), instead of
 * ioredis' "Unhandled error event" stack trace on every retry. Credentials are redacted.
 */
export function reportRedisState(client: Redis, url: string, who: string, log: (line: string) => void = console.error): void {
  const shown = redactRedisUrl(url);
  client.on('error', (e: Error) => {
    if (unreachable.has(url)) return;
    unreachable.add(url);
    const why = e.message || (e as NodeJS.ErrnoException).code || e.name;
    log(`${who}: Redis unreachable at ${shown} (REDIS_URL): ${why}; retrying, not ready until it answers.`);
  });
  client.on('ready', () => {
    if (unreachable.delete(url)) log(`${who}: Redis at ${shown} (REDIS_URL) answers again.`);
  });
}

/** Whether an error means "Redis did not answer" (not a bad command): ioredis' retry limit, a closed connection. */
export function isRedisUnavailable(e: unknown): boolean {
  if (!e || typeof e !== 'object') return false;
  const err = e as { name?: string; message?: string; code?: string };
  if (err.name === 'MaxRetriesPerRequestError') return true;
  if (err.code && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE'].includes(err.code)) return true;
  return /Connection is closed|Stream isn't writeable|max retries per request|connect ECONNREFUSED/i.test(err.message ?? '');
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
