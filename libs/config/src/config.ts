// loadConfig(env): validates every variable of ENV once, reports every bad one at once
// (ConfigError), and shapes the values into one typed object; each app reads its part.
import * as os from 'node:os';
import * as path from 'node:path';
import type { S3Settings } from '@dllm/storage';
import { ENV, type ApiKeyConfig, type EnvName, type EnvValues } from './env';

export class ConfigError extends Error {
  constructor(readonly problems: { name: string; message: string }[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p.name}: ${p.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface ModelEntry {
  name: string;
  /** Absolute path of the model directory. */
  dir: string;
}

/** The bucket settings libs/storage's S3 store takes, from the S3_* variables. */
export type S3Config = S3Settings;

/** Every S3_* variable STORAGE_BACKEND=s3 cannot do without. */
export const S3_REQUIRED: readonly EnvName[] = ['S3_ENDPOINT', 'S3_REGION', 'S3_BUCKET'];

export interface Config {
  redis: { url: string; queuePrefix: string };
  gateway: {
    host: string;
    port: number;
    keyPrefix: string;
    /** Scopes are always listed (an entry without a list has every scope). */
    apiKeys: ApiKeyConfig[];
    rateLimit: { requests: number; windowMs: number };
    bodyLimitBytes: number;
    fileLimitBytes: number;
    batch: { maxLines: number; sweepMs: number; allowShortWindows: boolean };
    requestTimeoutMs: number;
  };
  models: ModelEntry[];
  /** Absolute folders a registered model version's directory must lie under (MODEL_ROOTS or its default). */
  modelRoots: string[];
  worker: {
    /** The model this worker serves (an entry of `models`). */
    model: ModelEntry;
    /** Recorded on jobs (processedBy). */
    name: string;
    concurrency: number;
    maxBatchSize: number;
    kvPoolBytes: number;
    intraOpThreads: number;
    executionProvider: 'cpu' | 'cuda';
    host: string;
    port: number;
    drainTimeoutMs: number;
    lockDurationMs: number;
    stalledIntervalMs: number;
    maxStalledCount: number;
  };
  storage: {
    /** Where large objects live (STORAGE_BACKEND); libs/storage createLargeStore takes this object. */
    backend: 'fs' | 's3';
    /** Absolute STORAGE_DIR (the large-object store when backend is 'fs'; model uploads always). */
    dir: string;
    /** Set when backend is 's3'. Its secretAccessKey is not enumerable: JSON.stringify and console.log leave it out. */
    s3?: S3Config;
    resultTtlSeconds: number;
    resultMaxBytes: number;
  };
  retention: {
    completed: { count: number; ageSeconds: number };
    failed: { count: number; ageSeconds: number };
    /** Files and batch records. */
    seconds: number;
  };
}

/** Validates the raw variables; throws ConfigError naming every bad one. */
export function parseEnv(env: NodeJS.ProcessEnv | Record<string, string | undefined>): EnvValues {
  const out: Record<string, unknown> = {};
  const problems: { name: string; message: string }[] = [];
  for (const [name, spec] of Object.entries(ENV)) {
    const raw = env[name];
    const value = raw === undefined || raw.trim() === '' ? (spec.default ?? '') : raw;
    const r = spec.schema.safeParse(value);
    if (r.success) out[name] = r.data;
    else {
      const shown = (spec as { secret?: boolean }).secret ? '' : ` (got '${String(raw).slice(0, 80)}')`;
      problems.push({ name, message: r.error.issues.map((i) => i.message).join('; ') + shown });
    }
  }
  if (problems.length) throw new ConfigError(problems);
  return out as EnvValues;
}

export function loadConfig(env: NodeJS.ProcessEnv | Record<string, string | undefined> = process.env, cwd = process.cwd()): Config {
  const v = parseEnv(env);
  const problems: { name: EnvName; message: string }[] = [];
  const models: ModelEntry[] = (v.MODELS.length ? v.MODELS : [{ name: 'tiny-dllm', dir: v.MODEL_DIR }]).map((m) => ({
    name: m.name,
    dir: path.resolve(cwd, m.dir),
  }));
  let workerModel = models[0];
  if (v.WORKER_MODEL) {
    const m = models.find((x) => x.name === v.WORKER_MODEL);
    if (!m) problems.push({ name: 'WORKER_MODEL', message: `'${v.WORKER_MODEL}' is not one of MODELS (${models.map((x) => x.name).join(', ')})` });
    else workerModel = m;
  }
  let s3: S3Config | undefined;
  if (v.STORAGE_BACKEND === 's3') {
    for (const name of S3_REQUIRED) if (v[name] === '') problems.push({ name, message: 'required when STORAGE_BACKEND=s3' });
    // Static keys are both given or both left out (then the AWS SDK's default credential chain: IRSA, instance roles, SSO, AWS_* env).
    const keys = (['S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'] as const).filter((n) => v[n] !== '');
    if (keys.length === 1) {
      const missing = keys[0] === 'S3_ACCESS_KEY_ID' ? 'S3_SECRET_ACCESS_KEY' : 'S3_ACCESS_KEY_ID';
      problems.push({
        name: missing,
        message: `set with ${keys[0]}: give both static keys, or neither to use the default AWS credential chain (IRSA, instance role, SSO)`,
      });
    }
    s3 = {
      endpoint: v.S3_ENDPOINT,
      region: v.S3_REGION,
      bucket: v.S3_BUCKET,
      prefix: v.S3_PREFIX,
      forcePathStyle: v.S3_FORCE_PATH_STYLE,
      maxAttempts: v.S3_MAX_ATTEMPTS,
      requestTimeoutMs: v.S3_REQUEST_TIMEOUT_MS,
      connectTimeoutMs: v.S3_CONNECT_TIMEOUT_MS,
    };
    if (keys.length === 2) {
      s3.accessKeyId = v.S3_ACCESS_KEY_ID;
      Object.defineProperty(s3, 'secretAccessKey', { value: v.S3_SECRET_ACCESS_KEY, enumerable: false });
    }
  }
  if (problems.length) throw new ConfigError(problems);
  return {
    redis: { url: v.REDIS_URL, queuePrefix: v.QUEUE_PREFIX },
    gateway: {
      host: v.GATEWAY_HOST,
      port: v.GATEWAY_PORT,
      keyPrefix: v.GATEWAY_KEY_PREFIX,
      apiKeys: v.API_KEYS,
      rateLimit: { requests: v.RATE_LIMIT_REQUESTS, windowMs: v.RATE_LIMIT_WINDOW_MS },
      bodyLimitBytes: v.BODY_LIMIT_BYTES,
      fileLimitBytes: v.FILE_LIMIT_BYTES,
      batch: { maxLines: v.BATCH_MAX_LINES, sweepMs: v.BATCH_SWEEP_MS, allowShortWindows: v.BATCH_ALLOW_SHORT_WINDOWS },
      requestTimeoutMs: v.REQUEST_TIMEOUT_MS,
    },
    models,
    modelRoots: v.MODEL_ROOTS.length ? v.MODEL_ROOTS.map((r) => path.resolve(r)) : defaultModelRoots(v.STORAGE_DIR, models),
    worker: {
      model: workerModel,
      name: v.WORKER_NAME || `${os.hostname()}-${process.pid}`,
      concurrency: v.WORKER_CONCURRENCY,
      maxBatchSize: v.WORKER_MAX_BATCH_SIZE === '' ? v.WORKER_CONCURRENCY : v.WORKER_MAX_BATCH_SIZE,
      kvPoolBytes: v.KV_POOL_BYTES,
      intraOpThreads: v.WORKER_INTRA_OP_THREADS,
      executionProvider: v.WORKER_EXECUTION_PROVIDER,
      host: v.WORKER_HOST,
      port: v.WORKER_PORT,
      drainTimeoutMs: v.WORKER_DRAIN_TIMEOUT_MS,
      lockDurationMs: v.WORKER_LOCK_DURATION_MS,
      stalledIntervalMs: v.WORKER_STALLED_INTERVAL_MS,
      maxStalledCount: v.WORKER_MAX_STALLED_COUNT,
    },
    storage: {
      backend: v.STORAGE_BACKEND,
      dir: path.resolve(cwd, v.STORAGE_DIR),
      ...(s3 ? { s3 } : {}),
      resultTtlSeconds: v.RESULT_TTL_SECONDS,
      resultMaxBytes: v.RESULT_MAX_BYTES,
    },
    retention: {
      completed: { count: v.RETENTION_COMPLETED_COUNT, ageSeconds: v.RETENTION_COMPLETED_AGE_SECONDS },
      failed: { count: v.RETENTION_FAILED_COUNT, ageSeconds: v.RETENTION_FAILED_AGE_SECONDS },
      seconds: v.RETENTION_SECONDS,
    },
  };
}

/** For main(): the config, or a readable message on stderr and exit code 2. */
export function loadConfigOrExit(app: string, env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (e) {
    console.error(`${app}: ${(e as Error).message}\nSee docs/CONFIG.md for every variable.`);
    process.exit(2);
  }
}

const SECTION_TITLES: Record<string, string> = {
  redis: 'Redis and queues',
  gateway: 'Gateway',
  models: 'Models',
  worker: 'Worker',
  storage: 'Results and files',
  retention: 'Retention',
};

/** The README-ready table of every variable (docs/CONFIG.md). */
export function configMarkdown(): string {
  const lines = [
    '# Configuration',
    '',
    '<!-- generated from libs/config/src/env.ts by `npm run docs:config`; do not edit by hand -->',
    '',
    'Every dllm-farm process reads its settings from environment variables, validated once at boot:',
    'a bad value stops the process with one line per bad variable (exit code 2). Empty = default.',
    '',
  ];
  for (const section of Object.keys(SECTION_TITLES)) {
    lines.push(`## ${SECTION_TITLES[section]}`, '', '| variable | default | description |', '| --- | --- | --- |');
    for (const [name, spec] of Object.entries(ENV)) {
      if (spec.section !== section) continue;
      const def = spec.default ? `\`${spec.default}\`` : '(empty)';
      lines.push(`| \`${name}\` | ${def} | ${spec.description.replace(/\|/g, '\\|')} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

/**
 * MODEL_ROOTS when unset: STORAGE_DIR/models (where uploaded versions go) and the folder holding each
 * served model's directory, as absolute paths. A registered version's directory must lie under one.
 */
export function defaultModelRoots(storageDir: string, models: readonly { dir?: string }[]): string[] {
  return [path.join(storageDir, 'models'), ...models.flatMap((m) => (m.dir ? [path.dirname(m.dir)] : []))].map((r) => path.resolve(r));
}
