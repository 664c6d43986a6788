// RedisBlobStore against a real Redis (REDIS_URL): TTL, byte bound, prefix isolation.
import { Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BlobTooLargeError, createBlobStore, RedisBlobStore } from './index';

const prefix = `test-blob-${process.pid}-${Date.now().toString(36)}:`;
let redis: Redis;
beforeAll(() => (redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')));
afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
});

describe('RedisBlobStore', () => {
  it('stores bytes under its prefix with the TTL and refuses values over the bound', async () => {
    const s = new RedisBlobStore({ redis, prefix, maxBytes: 16, defaultTtlSeconds: 60 });
    await s.put('r:1', Buffer.from([0, 1, 2, 255]));
    expect(await s.get('r:1')).toEqual(Buffer.from([0, 1, 2, 255]));
    const ttl = await redis.ttl(`${prefix}r:1`);
    expect(ttl).toBeGreaterThan(50);
    expect(ttl).toBeLessThanOrEqual(60);
    await s.put('r:2', 'x', { ttlSeconds: 5 });
    expect(await redis.ttl(`${prefix}r:2`)).toBeLessThanOrEqual(5);
    await expect(s.put('r:3', 'x'.repeat(17))).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(await s.exists('r:3')).toBe(false);
    expect(await s.delete('r:1')).toBe(true);
    expect(await s.get('r:1')).toBeNull();
  });

  it('createBlobStore sends large values to the shared volume and leaves Redis a pointer', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-tier-'));
    try {
      const s = createBlobStore({ redis, prefix, dir, maxRedisBytes: 32, defaultTtlSeconds: 60 });
      const big = 'y'.repeat(1000);
      await s.put('big', big);
      expect((await s.get('big'))!.toString()).toBe(big);
      expect(await redis.strlen(`${prefix}big`)).toBeLessThan(32);
      expect(fs.readFileSync(path.join(dir, 'blobs', 'big'), 'utf8')).toBe(big);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
