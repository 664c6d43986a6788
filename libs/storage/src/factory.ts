// The stores every process uses, from config. One switch (STORAGE_BACKEND) decides where large
// objects live for every use: the shared volume (fs, the default) or an S3-compatible bucket (s3).
// Each use has its own folder / key prefix, the same name in both backends:
//   results  <dir>/blobs/...  or  s3://<bucket>/<S3_PREFIX>blobs/...   job results above the Redis
//            bound, rollout trajectories (rollouts/...), distillation datasets (distill/...)
//   files    <dir>/files/...  or  s3://<bucket>/<S3_PREFIX>files/...   batch input and output files
// The fs names are the on-disk layout of every release so far, so existing volumes stay readable.
import type { Redis } from 'ioredis';
import * as path from 'node:path';
import type { BlobStore } from './blob-store';
import { FsBlobStore } from './fs-store';
import { RedisBlobStore } from './redis-store';
import { S3BlobStore } from './s3-store';
import { TieredBlobStore } from './tiered-store';

/** An S3-compatible bucket (libs/config `storage.s3`: S3_* variables). */
export interface S3Settings {
  endpoint: string;
  region: string;
  bucket: string;
  /** Key prefix inside the bucket, '' or ending in '/'. */
  prefix: string;
  /** Static keys, both or neither; neither = the AWS SDK's default credential chain (IRSA, instance roles, SSO, AWS_* env). */
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
  /** Attempts per call, the first included (standard retry mode). SDK store default when omitted: 3. */
  maxAttempts?: number;
  /** Per attempt, ms until the answer's headers; also the idle bound while a body streams. Default 60000. */
  requestTimeoutMs?: number;
  /** Per attempt, ms to connect. Default 5000. */
  connectTimeoutMs?: number;
}

/** Where large objects live (libs/config `storage` has this shape). */
export interface LargeStoreSettings {
  /** 'fs' when omitted. */
  backend?: 'fs' | 's3';
  /** Shared volume (STORAGE_DIR); used when backend is 'fs'. */
  dir: string;
  /** Required when backend is 's3'. */
  s3?: S3Settings;
}

export type LargeStoreUse = 'results' | 'files';

/** Folder under STORAGE_DIR (fs) or key prefix under S3_PREFIX (s3) of each use. */
export const LARGE_STORE_FOLDERS: Readonly<Record<LargeStoreUse, string>> = { results: 'blobs', files: 'files' };

export interface LargeStoreOptions {
  /** 0 = keep until deleted. */
  defaultTtlSeconds: number;
  /** sweep() also removes anything older than this, expiry or not (0/undefined = off). */
  maxAgeSeconds?: number;
}

/** The large-object store of one use, on the configured backend. */
export function createLargeStore(s: LargeStoreSettings, use: LargeStoreUse, o: LargeStoreOptions): BlobStore {
  const folder = LARGE_STORE_FOLDERS[use];
  const backend = s.backend ?? 'fs';
  if (backend === 'fs') return new FsBlobStore({ dir: path.join(s.dir, folder), defaultTtlSeconds: o.defaultTtlSeconds, maxAgeSeconds: o.maxAgeSeconds });
  if (backend !== 's3') throw new Error(`unknown storage backend '${String(backend)}' (fs or s3)`);
  if (!s.s3) throw new Error("storage backend 's3' needs the S3 settings (S3_ENDPOINT, S3_REGION, S3_BUCKET; keys or the default credential chain)");
  const c = s.s3;
  return new S3BlobStore({
    endpoint: c.endpoint,
    region: c.region,
    bucket: c.bucket,
    accessKeyId: c.accessKeyId,
    secretAccessKey: c.secretAccessKey,
    forcePathStyle: c.forcePathStyle,
    maxAttempts: c.maxAttempts,
    requestTimeoutMs: c.requestTimeoutMs,
    connectTimeoutMs: c.connectTimeoutMs,
    prefix: `${c.prefix}${folder}/`,
    defaultTtlSeconds: o.defaultTtlSeconds,
    maxAgeSeconds: o.maxAgeSeconds,
  });
}

export interface StoreConfig extends LargeStoreSettings {
  redis: Redis;
  /** Redis key prefix (e.g. '<queuePrefix>:dllm-blob:'). */
  prefix: string;
  /** Largest value kept in Redis. */
  maxRedisBytes: number;
  defaultTtlSeconds: number;
}

/** Results: up to `maxRedisBytes` in Redis, larger ones and streams in the large-object store ('results'), one key space. */
export function createBlobStore(c: StoreConfig): BlobStore {
  const small = new RedisBlobStore({ redis: c.redis, prefix: c.prefix, maxBytes: c.maxRedisBytes, defaultTtlSeconds: c.defaultTtlSeconds });
  const large = createLargeStore(c, 'results', { defaultTtlSeconds: c.defaultTtlSeconds });
  return new TieredBlobStore(small, large);
}

export interface FileStoreConfig extends LargeStoreSettings {
  /** Files expire this long after they were written (TTL, and the sweep's age bound). */
  retentionSeconds: number;
}

/**
 * Where batch input and output files (OpenAI /v1/files) live: large, written and read as streams,
 * gone after the retention. The shared volume's files/ or the bucket's <S3_PREFIX>files/.
 */
export function createFileStore(c: FileStoreConfig): BlobStore {
  return createLargeStore(c, 'files', { defaultTtlSeconds: c.retentionSeconds, maxAgeSeconds: c.retentionSeconds });
}
