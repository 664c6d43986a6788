// Small values in Redis: SET with EX, a hard byte bound per value (larger ones are refused with a
// clear error, never truncated), every key under the store's prefix.
import type { Redis } from 'ioredis';
import { BlobTooLargeError, checkKey, toBuffer, type BlobStore, type PutOptions } from './blob-store';

export interface RedisBlobStoreOptions {
  redis: Redis;
  /** Prepended to every key, e.g. 'dllm:blob:'. */
  prefix: string;
  maxBytes: number;
  /** Used when put() gets no ttlSeconds; 0 = no expiry. */
  defaultTtlSeconds: number;
}

export class RedisBlobStore implements BlobStore {
  readonly kind = 'redis';
  readonly maxBytes: number;
  constructor(private readonly o: RedisBlobStoreOptions) {
    this.maxBytes = o.maxBytes;
  }

  /** The Redis key a blob key lives under (for tests and diagnostics). */
  redisKey(key: string): string {
    return this.o.prefix + checkKey(key);
  }

  async put(key: string, data: Buffer | string, opts: PutOptions = {}): Promise<void> {
    const buf = toBuffer(data);
    if (buf.length > this.maxBytes) throw new BlobTooLargeError(key, buf.length, this.maxBytes, 'redis');
    const ttl = opts.ttlSeconds ?? this.o.defaultTtlSeconds;
    if (ttl > 0) await this.o.redis.set(this.redisKey(key), buf, 'EX', ttl);
    else await this.o.redis.set(this.redisKey(key), buf);
  }

  get(key: string): Promise<Buffer | null> {
    return this.o.redis.getBuffer(this.redisKey(key));
  }

  async exists(key: string): Promise<boolean> {
    return (await this.o.redis.exists(this.redisKey(key))) === 1;
  }

  async delete(key: string): Promise<boolean> {
    return (await this.o.redis.del(this.redisKey(key))) > 0;
  }
}
