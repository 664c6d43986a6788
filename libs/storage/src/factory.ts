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

export interface FileStoreConfig {
  /** Shared volume; files go under <dir>/files. */
  dir: string;
  /** Files expire this long after they were written (TTL, and the sweep's age bound). */
  retentionSeconds: number;
}

/**
 * Where batch input and output files (OpenAI /v1/files) live: large, written and read as streams,
 * gone after the retention. The shared volume today; an object store can stand behind the same
 * BlobStore interface (putStream/getStream, TTL, sweep) without the gateway changing.
 */
export function createFileStore(c: FileStoreConfig): BlobStore {
  return new FsBlobStore({ dir: path.join(c.dir, 'files'), defaultTtlSeconds: c.retentionSeconds, maxAgeSeconds: c.retentionSeconds });
}
