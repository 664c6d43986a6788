// Starts a local dllm-farm cluster (one gateway, N workers) as real child processes on a Redis,
// with private queue/key prefixes and a fresh API key, and stops it cleanly. Used by the demo,
// the cluster benchmark and the e2e tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** The repository root (where package.json is), from source or from dist/. */
export function repoRoot(from = __dirname): string {
  let dir = from;
  while (!fs.existsSync(path.join(dir, 'package.json')) || dir.endsWith(`${path.sep}dist`)) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${from}`);
    dir = up;
  }
  return dir;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface ClusterOptions {
  redisUrl: string;
  /** 'dist' runs the built JS (npm run build); 'src' runs TypeScript through test/gateway.register.js. */
  mode?: 'dist' | 'src';
  models?: { name: string; dir: string }[];
  workers?: number;
  /** Extra environment for every process (WORKER_CONCURRENCY, RATE_LIMIT_REQUESTS, ...). */
  env?: Record<string, string>;
  workerEnv?: Record<string, string>;
  /** Where child output goes ('inherit' for debugging); default: a log file per process. */
  logDir?: string;
  storageDir?: string;
}

export interface Proc {
  name: string;
  child: ChildProcess;
  log: string;
  port: number;
}

export interface Cluster {
  gatewayUrl: string;
  apiKey: string;
  /** Second key (another owner) for isolation tests. */
  otherApiKey: string;
  queuePrefix: string;
  keyPrefix: string;
  storageDir: string;
  logDir: string;
  env: Record<string, string>;
  gateway: Proc;
  workers: Proc[];
  startWorker(extraEnv?: Record<string, string>): Promise<Proc>;
  /** Another gateway replica on the same Redis and prefixes (multi-replica tests); resolves once it is ready. */
  startGateway(extraEnv?: Record<string, string>): Promise<Proc & { url: string }>;
  stop(): Promise<void>;
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

async function waitHttp(url: string, proc: Proc, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null)
      throw new Error(`${proc.name} exited with ${proc.child.exitCode} before it was ready; log: ${proc.log}\n${tail(proc.log)}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (r.ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${proc.name} not ready at ${url} after ${timeoutMs} ms; log: ${proc.log}\n${tail(proc.log)}`);
}

export function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const root = repoRoot();
  const mode = o.mode ?? (fs.existsSync(path.join(root, 'dist/apps/gateway/src/main.js')) ? 'dist' : 'src');
  const entry = (app: string) =>
    mode === 'dist'
      ? [path.join(root, `dist/apps/${app}/src/main.js`)]
      : ['-r', path.join(root, 'test/gateway.register.js'), path.join(root, `apps/${app}/src/main.ts`)];
  const tag = `c${process.pid}${randomBytes(3).toString('hex')}`;
  const apiKey = `sk-${randomBytes(16).toString('hex')}`;
  const otherApiKey = `sk-${randomBytes(16).toString('hex')}`;
  const logDir = o.logDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-cluster-logs-'));
  const storageDir = o.storageDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-cluster-storage-'));
  fs.mkdirSync(logDir, { recursive: true });
  const models = o.models ?? [{ name: 'tiny-dllm', dir: path.join(root, 'models/tiny-dllm') }];
  const env: Record<string, string> = {
    REDIS_URL: o.redisUrl,
    QUEUE_PREFIX: tag,
    GATEWAY_KEY_PREFIX: `${tag}:gw:`,
    GATEWAY_HOST: '127.0.0.1',
    API_KEYS: `demo:${sha(apiKey)},other:${sha(otherApiKey)}`,
    MODELS: models.map((m) => `${m.name}=${m.dir}`).join(','),
    STORAGE_DIR: storageDir,
    WORKER_HOST: '127.0.0.1',
    ...o.env,
  };
  const procs: Proc[] = [];
  const launch = async (name: string, app: string, extra: Record<string, string>): Promise<Proc> => {
    const port = await freePort();
    const log = path.join(logDir, `${name}.log`);
    const fd = fs.openSync(log, 'a');
    const portVar = app === 'gateway' ? 'GATEWAY_PORT' : 'WORKER_PORT';
    const child = spawn(process.execPath, entry(app), {
      cwd: root,
      env: { ...process.env, ...env, ...extra, [portVar]: String(port), NO_COLOR: '1' },
      stdio: ['ignore', fd, fd],
    });
    fs.closeSync(fd);
    const p = { name, child, log, port };
    procs.push(p);
    return p;
  };
  const gateway = await launch('gateway', 'gateway', {});
  const workers: Proc[] = [];
  const startWorker = async (extraEnv: Record<string, string> = {}) => {
    const w = await launch(`worker-${workers.length + 1}`, 'worker', { ...o.workerEnv, ...extraEnv });
    workers.push(w);
    await waitHttp(`http://127.0.0.1:${w.port}/readyz`, w, 180_000);
    return w;
  };
  const gatewayUrl = `http://127.0.0.1:${gateway.port}`;
  let gateways = 1;
  const startGateway = async (extraEnv: Record<string, string> = {}) => {
    const g = await launch(`gateway-${++gateways}`, 'gateway', extraEnv);
    const url = `http://127.0.0.1:${g.port}`;
    await waitHttp(`${url}/readyz`, g, 120_000);
    return Object.assign(g, { url });
  };
  const stop = async () => {
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.child.exitCode !== null || p.child.signalCode) return resolve();
            const t = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
            p.child.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            p.child.kill('SIGTERM');
          }),
      ),
    );
    const { Redis } = await import('ioredis');
    const r = new Redis(o.redisUrl);
    try {
      for (const pattern of [`${tag}:*`]) {
        let cursor = '0';
        do {
          const [next, keys] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          cursor = next;
          if (keys.length) await r.del(...keys);
        } while (cursor !== '0');
      }
    } finally {
      r.disconnect();
    }
  };
  try {
    await waitHttp(`${gatewayUrl}/readyz`, gateway, 120_000);
    for (let i = 0; i < (o.workers ?? 1); i++) await startWorker();
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    gatewayUrl,
    apiKey,
    otherApiKey,
    queuePrefix: tag,
    keyPrefix: `${tag}:gw:`,
    storageDir,
    logDir,
    env,
    gateway,
    workers,
    startWorker,
    startGateway,
    stop,
  };
}
