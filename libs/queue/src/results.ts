// Generation results live once in the result store (small in Redis with a TTL, large in the
// large-object store: the shared volume or an S3 bucket, STORAGE_BACKEND); the job's BullMQ return
// value is only a reference plus a summary.
import type { Redis } from 'ioredis';
import { generationJob, generationReturnSchema, type GenerationResult, type GenerationReturn } from '@dllm/contracts';
import { createBlobStore, type BlobStore, type LargeStoreSettings } from '@dllm/storage';
import { resultBlobKey, resultStorePrefix } from './keys';

/** `{ queuePrefix, ...config.storage }` (libs/config); `{ queuePrefix, dir, ... }` alone = the fs backend. */
export interface ResultStoreConfig extends LargeStoreSettings {
  queuePrefix: string;
  resultMaxBytes: number;
  resultTtlSeconds: number;
}

/** The result store every gateway replica and worker uses (same keys for the same config). */
export function createResultStore(redis: Redis, c: ResultStoreConfig): BlobStore {
  return createBlobStore({
    redis,
    prefix: resultStorePrefix(c.queuePrefix),
    backend: c.backend,
    dir: c.dir,
    s3: c.s3,
    maxRedisBytes: c.resultMaxBytes,
    defaultTtlSeconds: c.resultTtlSeconds,
  });
}

export async function storeGenerationResult(
  store: BlobStore,
  queue: string,
  jobId: string,
  result: GenerationResult,
  ttlSeconds?: number,
): Promise<GenerationReturn> {
  const resultKey = resultBlobKey(queue, jobId);
  const buf = Buffer.from(JSON.stringify(result), 'utf8');
  await store.put(resultKey, buf, ttlSeconds ? { ttlSeconds } : {});
  return {
    resultKey,
    bytes: buf.length,
    finishReason: result.finishReason,
    usage: result.usage,
    stats: { forwards: result.stats.forwards, tpf: result.stats.tpf, wallMs: result.stats.wallMs },
  };
}

export class ResultUnavailableError extends Error {
  constructor(jobId: string, why: string) {
    super(`result of job ${jobId} is unavailable: ${why}`);
    this.name = 'ResultUnavailableError';
  }
}

/** Reads the full result of a completed generation job from its return value. */
export async function readGenerationResult(store: BlobStore, jobId: string, returnvalue: unknown): Promise<GenerationResult> {
  let rv = returnvalue;
  if (typeof rv === 'string') {
    try {
      rv = JSON.parse(rv);
    } catch {
      throw new ResultUnavailableError(jobId, 'return value is not JSON');
    }
  }
  const ref = generationReturnSchema.safeParse(rv);
  if (!ref.success) throw new ResultUnavailableError(jobId, 'the job returned no result reference');
  const raw = await store.get(ref.data.resultKey);
  if (!raw) throw new ResultUnavailableError(jobId, `${ref.data.resultKey} expired or missing`);
  return generationJob.parseResult(JSON.parse(raw.toString('utf8')));
}
