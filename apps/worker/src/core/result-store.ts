// The worker's result store (generation results, rollout trajectories, distillation datasets):
// small values in Redis, large ones in the large-object store STORAGE_BACKEND names (the shared
// volume or an S3 bucket), the same keys the gateway reads.
import type { Config } from '@dllm/config';
import { createResultStore } from '@dllm/queue';
import type { BlobStore } from '@dllm/storage';
import type { Redis } from 'ioredis';

export function workerResultStore(config: Config, redis: Redis): BlobStore {
  return createResultStore(redis, { queuePrefix: config.redis.queuePrefix, ...config.storage });
}
