// Fresh queue prefixes per test and cleanup of exactly those keys (never FLUSHDB: the Redis on 6379
// is shared with other engineers' tests).
import { Redis } from 'ioredis';

export const redisUrl = () => process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A prefix no other test uses: letters and digits only (valid as QUEUE_PREFIX). */
export function freshPrefix(tag: string): string {
  return `t${tag}${process.pid}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/** Deletes every key under `${prefix}:` (BullMQ queues, results, cancel marks). */
export async function cleanupPrefix(prefix: string, url = redisUrl()): Promise<number> {
  const r = new Redis(url);
  let n = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) n += await r.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    await r.quit();
  }
  return n;
}
