// Start the real apps as child processes from the build output, wait until they are ready, read
// their output, stop or kill them. Shared by the worker and gateway e2e tests and benchmarks.
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { ROOT } from './build';

export interface AppProcess {
  proc: ChildProcess;
  /** Everything the process printed so far (stdout + stderr). */
  output(): string;
  /** The message the app sent when ready ({ ready, port } / { ready, healthPort }). */
  ready: Record<string, unknown>;
  /** Resolves with the exit code (or signal name) once the process exited. */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * Starts `entry` (a dist .js, or with `fromSource` an apps/.../*.ts run through test/gateway.register.js)
 * and, unless waitReady is false, waits for its ready message.
 */
export async function startApp(
  entry: string,
  env: Record<string, string>,
  opts: { timeoutMs?: number; waitReady?: boolean; fromSource?: boolean } = {},
): Promise<AppProcess> {
  const proc = fork(path.join(ROOT, entry), [], {
    cwd: ROOT,
    ...(opts.fromSource ? { execArgv: ['-r', path.join(ROOT, 'test/gateway.register.js')] } : {}),
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const app: AppProcess = {
    proc,
    output: () => out,
    ready: {},
    exited,
    kill: (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  if (opts.waitReady === false) return app;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  app.ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${entry} not ready within ${timeoutMs} ms. Output:\n${out}`));
    }, timeoutMs);
    proc.on('message', (m: Record<string, unknown>) => {
      if (m && m.ready) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${entry} exited (${code}) before it was ready. Output:\n${out}`));
    });
  });
  return app;
}

export interface WorkerEnv {
  redisUrl: string;
  prefix: string;
  model: { name: string; dir: string };
  storageDir: string;
  name?: string;
  extra?: Record<string, string>;
}

/** A worker process on the given model and queue prefix, health server on a free port. */
export async function startWorkerProcess(w: WorkerEnv, opts: { timeoutMs?: number; waitReady?: boolean } = {}): Promise<AppProcess & { healthUrl: string }> {
  const app = await startApp(
    'dist/apps/worker/src/main.js',
    {
      REDIS_URL: w.redisUrl,
      QUEUE_PREFIX: w.prefix,
      MODELS: `${w.model.name}=${w.model.dir}`,
      WORKER_MODEL: w.model.name,
      WORKER_PORT: '0',
      WORKER_HOST: '127.0.0.1',
      WORKER_INTRA_OP_THREADS: '1',
      STORAGE_DIR: w.storageDir,
      ...(w.name ? { WORKER_NAME: w.name } : {}),
      ...(w.extra ?? {}),
    },
    opts,
  );
  return Object.assign(app, { healthUrl: `http://127.0.0.1:${app.ready.healthPort}` });
}

/** Polls `check` until it returns a truthy value (or throws after timeoutMs). */
export async function waitFor<T>(check: () => Promise<T> | T, timeoutMs = 20_000, everyMs = 50, what = 'condition'): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
