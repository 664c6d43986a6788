// Redis unreachable (issue 13 fault 10): the real gateway and worker processes (from source) with
// REDIS_URL pointing at a closed local port. Each says so in one line that names REDIS_URL with the
// password redacted (no ioredis stack traces); the gateway stays live, is not ready, answers 503 with
// Retry-After where Redis is needed, and both exit promptly on SIGTERM / SIGINT.
import * as net from 'node:net';
import { hashApiKey } from '../apps/gateway/src/auth/api-keys';
import { testModelDir } from './helpers/fixture-model';
import { startApp, type AppProcess } from './helpers/processes';

jest.setTimeout(90_000);

const KEY = 'sk-redis-down';

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

type Proc = AppProcess;

function start(entry: string, env: Record<string, string>): Promise<Proc> {
  return startApp(entry, env, { waitReady: false, fromSource: true });
}

async function until(check: () => boolean, ms: number, what: string, p: Proc): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}. Output:\n${p.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Stops the process with `signal` and returns how long it took to exit (ms). */
async function stopMs(p: Proc, signal: NodeJS.Signals): Promise<number> {
  const t = Date.now();
  p.proc.kill(signal);
  const timer = setTimeout(() => p.proc.kill('SIGKILL'), 20_000);
  await p.exited;
  clearTimeout(timer);
  return Date.now() - t;
}

function expectOneClearLine(output: string, port: number): void {
  const lines = output.split('\n').filter((l) => /Redis unreachable/.test(l));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(`redis://user:***@127.0.0.1:${port} (REDIS_URL)`);
  expect(output).not.toContain('s3cret');
  expect(output).not.toMatch(/Unhandled error event|maxRetriesPerRequest|^\s+at /m);
}

let gateway: Proc | undefined;
let worker: Proc | undefined;

afterAll(() => {
  for (const p of [gateway, worker]) if (p && p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
});

it('gateway: one redacted line, live but not ready, 503 + Retry-After, prompt exit on SIGTERM', async () => {
  const port = await closedPort();
  const m = testModelDir();
  gateway = await start('apps/gateway/src/main.ts', {
    REDIS_URL: `redis://user:s3cret@127.0.0.1:${port}`,
    API_KEYS: `alice:${hashApiKey(KEY)}`,
    MODELS: `tiny-dllm=${m.dir}`,
    GATEWAY_PORT: '0',
    GATEWAY_HOST: '127.0.0.1',
  });
  const g = gateway;
  await until(() => /gateway listening on (\S+)/.test(g.output()), 60_000, 'the gateway to listen', g);
  const base = /gateway listening on (\S+)/.exec(g.output())![1];
  expect((await fetch(`${base}/healthz`)).status).toBe(200);
  const ready = await fetch(`${base}/readyz`);
  expect(ready.status).toBe(503);
  expect(((await ready.json()) as { status: string }).status).toBe('unavailable');
  const auth = { authorization: `Bearer ${KEY}` };
  const completion = '{"model":"tiny-dllm","prompt":"hi"}';
  const calls = [
    ['GET', '/v1/models', undefined],
    ['POST', '/v1/completions', completion],
    ['GET', '/v1/jobs/gen-x', undefined],
  ] as const;
  for (const [method, p, body] of calls) {
    const t = Date.now();
    const r = await fetch(`${base}${p}`, { method, headers: { ...auth, ...(body ? { 'content-type': 'application/json' } : {}) }, body });
    expect([p, r.status]).toEqual([p, 503]);
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('redis_unavailable');
    expect(Date.now() - t).toBeLessThan(2000);
  }
  await new Promise((r) => setTimeout(r, 3000)); // let ioredis retry a few times
  expectOneClearLine(g.output(), port);
  expect(await stopMs(g, 'SIGTERM')).toBeLessThan(6000);
});

it('worker: one redacted line instead of stack traces, prompt exit on SIGINT', async () => {
  const port = await closedPort();
  const m = testModelDir();
  worker = await start('apps/worker/src/main.ts', {
    REDIS_URL: `redis://user:s3cret@127.0.0.1:${port}`,
    MODELS: `tiny-dllm=${m.dir}`,
    WORKER_MODEL: 'tiny-dllm',
    WORKER_PORT: '0',
    WORKER_HOST: '127.0.0.1',
    WORKER_INTRA_OP_THREADS: '1',
  });
  const w = worker;
  await until(() => /Redis unreachable/.test(w.output()), 60_000, 'the worker to report Redis', w);
  await new Promise((r) => setTimeout(r, 3000));
  expectOneClearLine(w.output(), port);
  expect(w.output()).not.toMatch(/worker ready/);
  expect(await stopMs(w, 'SIGINT')).toBeLessThan(6000);
});
