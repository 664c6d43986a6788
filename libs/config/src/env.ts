// Every environment variable of every dllm-farm process, in one table: name, parser, default,
// description, section. loadConfig() validates all of them once at boot and reports every bad value
// at once; docs/CONFIG.md is rendered from this table (npm run docs:config; a unit test checks drift).
import { z } from 'zod';

export type Section = 'redis' | 'gateway' | 'worker' | 'models' | 'storage' | 'retention';

export interface VarSpec<T = unknown> {
  section: Section;
  description: string;
  /** Default as written in the environment ('' = empty/unset means the default). */
  default?: string;
  schema: z.ZodType<T>;
  /** Never echoed in config errors (credentials, or values that may embed them). */
  secret?: boolean;
}

const intIn = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, 'expected an integer')
    .transform(Number)
    .pipe(z.number().int().min(min, `expected an integer >= ${min}`).max(max, `expected an integer <= ${max}`));

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .refine((s) => ['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off'].includes(s), 'expected true/false (or 1/0, yes/no, on/off)')
  .transform((s) => ['1', 'true', 'yes', 'on'].includes(s));

const redisUrl = z
  .string()
  .trim()
  .refine((s) => {
    try {
      const u = new URL(s);
      return u.protocol === 'redis:' || u.protocol === 'rediss:';
    } catch {
      return false;
    }
  }, 'expected a URL like redis://[user:password@]host:port[/db] (or rediss:// for TLS)');

/** Model and queue names: they become part of queue names and Redis keys. */
export const MODEL_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const modelName = z.string().regex(MODEL_NAME_RE, 'model names use letters, digits, . _ - (at most 64, no ":")');

const modelList = z
  .string()
  .trim()
  .transform((s, ctx) => {
    const out: { name: string; dir: string }[] = [];
    for (const entry of s
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean)) {
      const eq = entry.indexOf('=');
      const name = eq > 0 ? entry.slice(0, eq).trim() : '';
      const dir = eq > 0 ? entry.slice(eq + 1).trim() : '';
      if (!name || !dir) {
        ctx.addIssue({ code: 'custom', message: `expected 'name=dir' entries separated by commas, got '${entry}'` });
        continue;
      }
      if (!MODEL_NAME_RE.test(name)) ctx.addIssue({ code: 'custom', message: `model name '${name}': letters, digits, . _ - only (at most 64, no ":")` });
      if (out.some((m) => m.name === name)) ctx.addIssue({ code: 'custom', message: `model '${name}' is listed twice` });
      out.push({ name, dir });
    }
    return out;
  });

/**
 * What an API key may do. A key without a scope list has every scope (configs written before
 * scopes existed keep working). Routes that only read shared facts (GET /v1/models, a model's
 * versions) need no scope; the gateway answers 403 when a key lacks a route's scope.
 */
export const API_SCOPES = {
  generate: 'completions, chat completions and native jobs (/v1/completions, /v1/chat/completions, /v1/jobs)',
  batch: 'files and batches (/v1/files, /v1/batches)',
  rollout: 'RL rollouts (/v1/rollouts)',
  distill: 'distillation jobs (/v1/distill)',
  'models:write': 'registering model versions (POST /v1/models/:name/versions)',
} as const;
export type ApiScope = keyof typeof API_SCOPES;
export const ALL_API_SCOPES = Object.keys(API_SCOPES) as ApiScope[];
const isScope = (s: string): s is ApiScope => Object.prototype.hasOwnProperty.call(API_SCOPES, s);

export interface ApiKeyConfig {
  name: string;
  sha256: string;
  scopes: ApiScope[];
}

/**
 * `name:sha256hex[:scope+scope...]`, comma separated. No scope list (or `*`) = every scope.
 * Scope names may contain ':' (`models:write`): everything after the hash is the list.
 */
export function parseApiKeys(s: string, addIssue: (message: string) => void): ApiKeyConfig[] {
  const out: ApiKeyConfig[] = [];
  const entries = s
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  entries.forEach((entry, i) => {
    const m = /^([A-Za-z0-9._-]{1,64}):([0-9a-fA-F]{64})(?::(.*))?$/.exec(entry);
    if (!m) {
      // Never echo the entry: it may be a raw key pasted by mistake.
      addIssue(`entry ${i + 1}: expected 'name:sha256hex' or 'name:sha256hex:scope+scope' (64 hex digits of the SHA-256 of the key, not the key itself)`);
      return;
    }
    const [, name, hash, list] = m;
    if (out.some((k) => k.name === name)) addIssue(`key name '${name}' is listed twice`);
    let scopes: ApiScope[] = [...ALL_API_SCOPES];
    if (list !== undefined) {
      const asked = list.split('+').map((x) => x.trim());
      if (asked.length === 1 && asked[0] === '*') scopes = [...ALL_API_SCOPES];
      else if (asked.length === 1 && asked[0] === '') {
        addIssue(`key '${name}': empty scope list after the hash (leave out ':' for every scope, or list some of ${ALL_API_SCOPES.join(', ')})`);
        return;
      } else {
        const bad = asked.filter((x) => !isScope(x));
        if (bad.length) {
          addIssue(
            `key '${name}': unknown scope${bad.length > 1 ? 's' : ''} ${bad.map((b) => `'${b}'`).join(', ')} (known: ${ALL_API_SCOPES.join(', ')}, or '*')`,
          );
          return;
        }
        scopes = ALL_API_SCOPES.filter((x) => asked.includes(x));
      }
    }
    out.push({ name, sha256: hash.toLowerCase(), scopes });
  });
  return out;
}

const apiKeyList = z
  .string()
  .trim()
  .transform((s, ctx) => parseApiKeys(s, (message) => ctx.addIssue({ code: 'custom', message })));

const host = z.string().trim().min(1, 'expected a host name or address');

/**
 * '' (unset) or a value `t` accepts, with t's own messages (a union would only say 'Invalid input').
 * Cross-checks (required when STORAGE_BACKEND=s3) are in loadConfig.
 */
const optional = (t: z.ZodType<string, string>) =>
  z.string().transform((s, ctx): string => {
    if (s.trim() === '') return '';
    const r = t.safeParse(s);
    if (r.success) return r.data;
    for (const i of r.error.issues) ctx.addIssue({ code: 'custom', message: i.message });
    return z.NEVER;
  });

const s3Endpoint = z
  .string()
  .trim()
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password && !u.search && !u.hash;
    } catch {
      return false;
    }
  }, 'expected an http(s) URL like https://s3.eu-west-1.amazonaws.com or http://minio.storage.svc:9000, without credentials, query or fragment (keys go in S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY)');

// S3 bucket naming rules (lowercase letters, digits, '.', '-'; 3-63; starts and ends alnum).
const s3Bucket = z
  .string()
  .trim()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "expected an S3 bucket name: 3-63 lowercase letters, digits, '.' and '-'");
const s3Region = z
  .string()
  .trim()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "expected a region name like 'us-east-1' (MinIO and most S3-compatible servers accept us-east-1)");
const s3Prefix = z
  .string()
  .trim()
  .regex(/^(?!\/)(?!.*\.\.)(?!.*\/\/)[A-Za-z0-9._/-]{1,200}$/, "letters, digits, . _ - / only, no leading '/', no '..' or '//'")
  .transform((s) => (s.endsWith('/') ? s : `${s}/`));
const nonEmpty = z.string().trim().min(1);
const prefix = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ - only (no ":"; BullMQ adds its own separators)');
const keyPrefix = z.string().regex(/^[A-Za-z0-9._:-]{1,64}$/, 'letters, digits, . _ : - only');

export const ENV = {
  REDIS_URL: {
    section: 'redis',
    description: 'Redis used by queues, results, rate limits and cancellation.',
    default: 'redis://127.0.0.1:6379',
    schema: redisUrl,
    secret: true,
  },
  QUEUE_PREFIX: {
    section: 'redis',
    description: 'BullMQ key prefix. Gateway and workers of one deployment must agree; changing it strands queued jobs.',
    default: 'bull',
    schema: prefix,
  },

  GATEWAY_HOST: { section: 'gateway', description: 'Address the gateway listens on.', default: '0.0.0.0', schema: host },
  GATEWAY_PORT: { section: 'gateway', description: 'Gateway HTTP port (0 = any free port).', default: '8080', schema: intIn(0, 65535) },
  GATEWAY_KEY_PREFIX: {
    section: 'gateway',
    description: 'Prefix of the Redis keys the gateway writes itself (batches, file index, rate limits).',
    default: 'dllm:gw:',
    schema: keyPrefix,
  },
  API_KEYS: {
    section: 'gateway',
    secret: true,
    description:
      "Comma-separated 'name:sha256hex[:scope+scope]' entries; the hash is the SHA-256 of the key, e.g. `printf %s \"$KEY\" | sha256sum`. Each name sees only its own jobs, batches and files. Scopes: `generate` (completions, chat, /v1/jobs), `batch` (files, batches), `rollout`, `distill`, `models:write` (POST /v1/models/:name/versions); no list (or `*`) = all of them; a key lacking a route's scope gets 403.",
    default: '',
    schema: apiKeyList,
  },
  RATE_LIMIT_REQUESTS: { section: 'gateway', description: 'Requests per API key per window (429 above).', default: '600', schema: intIn(1) },
  RATE_LIMIT_WINDOW_MS: { section: 'gateway', description: 'Rate-limit window in milliseconds.', default: '60000', schema: intIn(1) },
  BODY_LIMIT_BYTES: { section: 'gateway', description: 'Largest JSON request body (413 above).', default: '1048576', schema: intIn(1024) },
  FILE_LIMIT_BYTES: {
    section: 'gateway',
    description: 'Largest file in an upload (POST /v1/files, POST /v1/models/:name/versions), streamed to the store as it arrives (413 above).',
    default: '104857600',
    schema: intIn(1024),
  },
  BATCH_MAX_LINES: { section: 'gateway', description: 'Most request lines in one batch input file.', default: '50000', schema: intIn(1) },
  BATCH_SWEEP_MS: {
    section: 'gateway',
    description: 'How often a gateway sweeps active batches (expiry, finalization); 0 = never.',
    default: '2000',
    schema: intIn(0),
  },
  BATCH_ALLOW_SHORT_WINDOWS: {
    section: 'gateway',
    description: "Accept completion windows shorter than OpenAI's 24h (tests, demos).",
    default: 'false',
    schema: bool,
  },
  REQUEST_TIMEOUT_MS: {
    section: 'gateway',
    description: 'How long a synchronous completion waits for its job before 504 (the job is cancelled).',
    default: '600000',
    schema: intIn(1),
  },

  MODEL_DIR: {
    section: 'models',
    description: "Model directory of the default model 'tiny-dllm' when MODELS is unset.",
    default: 'models/tiny-dllm',
    schema: z.string().trim().min(1),
  },
  MODELS: {
    section: 'models',
    description: "Served models as comma-separated 'name=dir' (e.g. `tiny-dllm=models/tiny-dllm,tiny-ar=models/tiny-ar`). Default: tiny-dllm=$MODEL_DIR.",
    default: '',
    schema: modelList,
  },
  MODEL_ROOTS: {
    section: 'models',
    description:
      'Comma-separated folders under which POST /v1/models/:name/versions may name a model directory ({"dir": ...}); anything else is refused without saying whether it exists. Default: STORAGE_DIR/models (where uploads go) and the folder holding each MODELS directory.',
    default: '',
    schema: z
      .string()
      .trim()
      .transform((s) =>
        s
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean),
      ),
  },
  WORKER_MODEL: {
    section: 'worker',
    description: 'Name (from MODELS) of the model this worker loads and serves; its generation queue is dllm.generation.<name>. Default: the first model.',
    default: '',
    schema: z.union([z.literal(''), modelName]),
  },
  WORKER_NAME: {
    section: 'worker',
    description: 'Name this worker records on the jobs it takes (BullMQ processedBy) and in metrics. Default: <hostname>-<pid>.',
    default: '',
    schema: z.union([z.literal(''), z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'letters, digits, . _ - only')]),
  },
  WORKER_CONCURRENCY: {
    section: 'worker',
    description: 'Jobs one worker runs at once; concurrent jobs are batched together by the engine.',
    default: '16',
    schema: intIn(1, 1024),
  },
  WORKER_MAX_BATCH_SIZE: {
    section: 'worker',
    description: 'Most sequences the engine decodes in one batch (default: WORKER_CONCURRENCY).',
    default: '',
    schema: z.union([z.literal(''), intIn(1, 1024)]),
  },
  KV_POOL_BYTES: { section: 'worker', description: 'KV-cache pool budget of the engine, in bytes.', default: '268435456', schema: intIn(1 << 20) },
  WORKER_INTRA_OP_THREADS: { section: 'worker', description: 'onnxruntime intra-op threads (0 = onnxruntime default).', default: '0', schema: intIn(0, 256) },
  WORKER_EXECUTION_PROVIDER: {
    section: 'worker',
    description: "onnxruntime execution provider: 'cpu' or 'cuda'.",
    default: 'cpu',
    schema: z.enum(['cpu', 'cuda']),
  },
  WORKER_HOST: { section: 'worker', description: 'Address of the worker health/metrics server.', default: '0.0.0.0', schema: host },
  WORKER_PORT: {
    section: 'worker',
    description: 'Port of the worker health/metrics server (/healthz, /readyz, /metrics; 0 = any free port).',
    default: '9090',
    schema: intIn(0, 65535),
  },
  WORKER_DRAIN_TIMEOUT_MS: {
    section: 'worker',
    description: 'On SIGTERM, how long active jobs may finish before the rest are handed back to the queue.',
    default: '30000',
    schema: intIn(0),
  },
  WORKER_LOCK_DURATION_MS: {
    section: 'worker',
    description: 'BullMQ job lock; a worker that stops renewing it (killed) loses the job to stalled recovery.',
    default: '30000',
    schema: intIn(1000),
  },
  WORKER_STALLED_INTERVAL_MS: {
    section: 'worker',
    description: 'How often workers look for stalled jobs (jobs of dead workers) and put them back.',
    default: '30000',
    schema: intIn(1000),
  },
  WORKER_MAX_STALLED_COUNT: {
    section: 'worker',
    description: 'How many times a job may stall (its worker died) before it fails.',
    default: '2',
    schema: intIn(0, 100),
  },

  STORAGE_BACKEND: {
    section: 'storage',
    description:
      'Where large objects live (batch files, results above RESULT_MAX_BYTES, rollout trajectories, distillation datasets), for every gateway replica and worker alike: `fs` = the shared volume STORAGE_DIR (ReadWriteMany in Kubernetes), `s3` = an S3-compatible bucket (S3_* below; AWS S3, MinIO, Ceph RGW, R2...). Both use the folders `files/` and `blobs/` (on the volume, or under S3_PREFIX in the bucket).',
    default: 'fs',
    schema: z.enum(['fs', 's3'], { error: "expected 'fs' or 's3'" }),
  },
  STORAGE_DIR: {
    section: 'storage',
    description:
      'Shared volume for batch files and large results when STORAGE_BACKEND=fs (every gateway replica and worker must see the same one); with s3 only uploaded model versions (POST /v1/models/:name/versions, multipart) are written here.',
    default: 'var/storage',
    schema: z.string().trim().min(1),
  },
  S3_ENDPOINT: {
    section: 'storage',
    description: 'STORAGE_BACKEND=s3: the S3 API endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://minio.storage.svc:9000`. Required with s3.',
    default: '',
    schema: optional(s3Endpoint),
    secret: true,
  },
  S3_REGION: {
    section: 'storage',
    description:
      'STORAGE_BACKEND=s3: the region requests are signed for (SigV4), e.g. `eu-west-1`; `us-east-1` for MinIO and most S3-compatible servers. Required with s3.',
    default: '',
    schema: optional(s3Region),
  },
  S3_BUCKET: {
    section: 'storage',
    description: 'STORAGE_BACKEND=s3: the bucket (it must exist; dllm-farm does not create it). Required with s3.',
    default: '',
    schema: optional(s3Bucket),
  },
  S3_PREFIX: {
    section: 'storage',
    description:
      "STORAGE_BACKEND=s3: key prefix inside the bucket (a '/' is added if missing), e.g. `dllm-farm/prod/`; objects go under `<prefix>files/` and `<prefix>blobs/`. Empty = the bucket's root.",
    default: '',
    schema: optional(s3Prefix),
  },
  S3_ACCESS_KEY_ID: {
    section: 'storage',
    description:
      'STORAGE_BACKEND=s3: static access key id, set together with S3_SECRET_ACCESS_KEY (put both in a Secret, not the ConfigMap). Leave both empty to use the AWS SDK default credential chain: `AWS_*` env, web identity (EKS IRSA, `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`), SSO / shared config (`AWS_PROFILE`), ECS and EC2 instance roles.',
    default: '',
    schema: optional(nonEmpty),
    secret: true,
  },
  S3_SECRET_ACCESS_KEY: {
    section: 'storage',
    description: 'STORAGE_BACKEND=s3: static secret access key (never printed), set together with S3_ACCESS_KEY_ID; both empty = the default credential chain.',
    default: '',
    schema: optional(nonEmpty),
    secret: true,
  },
  S3_MAX_ATTEMPTS: {
    section: 'storage',
    description:
      'STORAGE_BACKEND=s3: attempts per S3 call, the first included (AWS SDK standard retry mode: 5xx, 503 SlowDown and other throttling, timeouts and dropped connections are retried with exponential back-off).',
    default: '3',
    schema: intIn(1, 20),
  },
  S3_REQUEST_TIMEOUT_MS: {
    section: 'storage',
    description:
      "STORAGE_BACKEND=s3: per attempt, how long a request may take until the answer's headers arrive (an uploaded part included), and how long a downloading body may stay silent; then the attempt fails (and is retried within S3_MAX_ATTEMPTS).",
    default: '60000',
    schema: intIn(100, 3_600_000),
  },
  S3_CONNECT_TIMEOUT_MS: {
    section: 'storage',
    description: 'STORAGE_BACKEND=s3: per attempt, how long opening the connection to S3_ENDPOINT may take.',
    default: '5000',
    schema: intIn(100, 600_000),
  },
  S3_FORCE_PATH_STYLE: {
    section: 'storage',
    description:
      'STORAGE_BACKEND=s3: `true` = requests go to `<endpoint>/<bucket>/<key>` (MinIO, Ceph, IP endpoints); `false` = to `<bucket>.<endpoint host>/<key>` (virtual-hosted style, what AWS S3 prefers).',
    default: 'true',
    schema: bool,
  },
  RESULT_TTL_SECONDS: { section: 'storage', description: 'How long a job result is kept.', default: '86400', schema: intIn(1) },
  RESULT_MAX_BYTES: {
    section: 'storage',
    description: 'Largest result kept in Redis; larger ones go to the large-object store (STORAGE_BACKEND).',
    default: '262144',
    schema: intIn(256, 512 * 1024 * 1024),
  },

  RETENTION_COMPLETED_COUNT: {
    section: 'retention',
    description: 'Completed jobs kept per queue (older ones are removed).',
    default: '10000',
    schema: intIn(0),
  },
  RETENTION_COMPLETED_AGE_SECONDS: { section: 'retention', description: 'Completed jobs older than this are removed.', default: '3600', schema: intIn(1) },
  RETENTION_FAILED_COUNT: { section: 'retention', description: 'Failed jobs kept per queue.', default: '10000', schema: intIn(0) },
  RETENTION_FAILED_AGE_SECONDS: { section: 'retention', description: 'Failed jobs older than this are removed.', default: '604800', schema: intIn(1) },
  RETENTION_SECONDS: { section: 'retention', description: 'How long uploaded files and batch records live.', default: '604800', schema: intIn(1) },
} satisfies Record<string, VarSpec>;

export type EnvName = keyof typeof ENV;
export type EnvValues = { [K in EnvName]: z.output<(typeof ENV)[K]['schema']> };
