// The store every process uses, from config: results up to `maxBytes` in Redis, larger ones and
// streams on the shared volume, one key space.
import type { Redis } from 'ioredis';
import * as path from 'node:path';
import type { BlobStore } from './blob-store';
import { FsBlobStore } from './fs-store';
import { RedisBlobStore } from './redis-store';
import { TieredBlobStore } from './tiered-store';

export interface StoreConfig {
  redis: Redis;
  /** Redis key prefix (e.g. '<queuePrefix>:dllm-blob:'). */
  prefix: string;
  /** Shared volume; blobs go under <dir>/blobs. */
  dir: string;
  /** Largest value kept in Redis. */
  maxRedisBytes: number;
  defaultTtlSeconds: number;
}

export function createBlobStore(c: StoreConfig): BlobStore {
  const small = new RedisBlobStore({ redis: c.redis, prefix: c.prefix, maxBytes: c.maxRedisBytes, defaultTtlSeconds: c.defaultTtlSeconds });
  const large = new FsBlobStore({ dir: path.join(c.dir, 'blobs'), defaultTtlSeconds: c.defaultTtlSeconds });
  return new TieredBlobStore(small, large);
}
