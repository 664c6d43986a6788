// The gateway's stores, built in one place from its settings: the result store (job results,
// rollout trajectories, distillation datasets) and the file store (batch input/output files). Both
// follow STORAGE_BACKEND (config.storage): the shared volume or an S3-compatible bucket. Settings
// built by hand without `resultStore` (tests, the benchmark) get the volume at `storageDir`.
import type { Redis } from 'ioredis';
import { createResultStore } from '@dllm/queue';
import { createFileStore, type BlobStore, type LargeStoreSettings } from '@dllm/storage';
import type { GatewaySettings } from './settings';

/** Where this gateway keeps large objects. */
export function largeStoreSettings(s: GatewaySettings): LargeStoreSettings {
  const rs = s.resultStore;
  return rs ? { backend: rs.backend, dir: rs.dir, s3: rs.s3 } : { backend: 'fs', dir: s.storageDir };
}

/** The result store shared with the workers (same keys for the same config). */
export function gatewayResultStore(redis: Redis, s: GatewaySettings): BlobStore {
  const rs = s.resultStore;
  return createResultStore(redis, {
    queuePrefix: s.queuePrefix,
    ...largeStoreSettings(s),
    resultMaxBytes: rs?.resultMaxBytes ?? 262_144,
    resultTtlSeconds: rs?.resultTtlSeconds ?? 86_400,
  });
}

/** Batch input and output files (OpenAI /v1/files), expiring after the retention. */
export function gatewayFileStore(s: GatewaySettings): BlobStore {
  return createFileStore({ ...largeStoreSettings(s), retentionSeconds: s.retentionSeconds });
}
