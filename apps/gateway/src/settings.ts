// What the gateway needs from the environment, in one typed object. Built from @dllm/config's
// validated env in main.ts; tests and the benchmark build it directly.
import type { Config } from '@dllm/config';
import type { ApiKeyEntry } from './auth/api-keys';

export interface GatewaySettings {
  host: string;
  port: number;
  redisUrl: string;
  /** BullMQ key prefix (QUEUE_PREFIX); gateway and workers must agree. */
  queuePrefix: string;
  /** Prefix of every Redis key the gateway writes itself (batches, files index, rate limits). */
  keyPrefix: string;
  apiKeys: ApiKeyEntry[];
  rateLimit: { requests: number; windowMs: number };
  /** JSON request bodies. */
  bodyLimitBytes: number;
  /** Uploads to POST /v1/files. */
  fileLimitBytes: number;
  models: { name: string; dir?: string }[];
  /**
   * Folders a model version registered by path must lie under (MODEL_ROOTS). Default when unset:
   * STORAGE_DIR/models and the folder holding each `models` directory.
   */
  modelRoots?: string[];
  /**
   * STORAGE_DIR: uploaded model versions, and (backend 'fs', or no `resultStore`) the shared volume for
   * files, batch outputs and large results. Where large objects go is `resultStore.backend` (src/storage.ts).
   */
  storageDir: string;
  batch: {
    maxLines: number;
    /** How often a gateway sweeps active batches (expiry, finalization). */
    sweepMs: number;
    /** Windows shorter than this are refused unless allowShortWindows. */
    allowShortWindows: boolean;
  };
  /** Interval of the `: ping` comment on SSE streams, ms (default 15 s; tests shorten it). */
  sseHeartbeatMs?: number;
  /** How long a synchronous completion waits for its job before answering 504. */
  requestTimeoutMs: number;
  /** How long files and batch records live (seconds). */
  retentionSeconds: number;
  /** Job retention (removeOnComplete / removeOnFail) and the stores (backend, TTL, Redis bound), shared with workers. */
  jobRetention?: Config['retention'];
  resultStore?: Config['storage'];
}

/** The gateway's part of the validated config. */
export function settingsFromConfig(c: Config): GatewaySettings {
  return {
    host: c.gateway.host,
    port: c.gateway.port,
    redisUrl: c.redis.url,
    queuePrefix: c.redis.queuePrefix,
    keyPrefix: c.gateway.keyPrefix,
    apiKeys: c.gateway.apiKeys,
    rateLimit: c.gateway.rateLimit,
    bodyLimitBytes: c.gateway.bodyLimitBytes,
    fileLimitBytes: c.gateway.fileLimitBytes,
    models: c.models,
    modelRoots: c.modelRoots,
    storageDir: c.storage.dir,
    batch: c.gateway.batch,
    requestTimeoutMs: c.gateway.requestTimeoutMs,
    retentionSeconds: c.retention.seconds,
    jobRetention: c.retention,
    resultStore: c.storage,
  };
}

export const REQUEST_OWNER = Symbol('owner');
