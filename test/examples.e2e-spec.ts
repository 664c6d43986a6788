// The README's API examples (examples/*.mjs with the official openai client, examples/curl.sh) run as
// written against a real gateway + worker on a real Redis: what a newcomer copies must work.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startCluster, type Cluster } from '../apps/demo/src/cluster';
import { testModelDir } from './helpers/fixture-model';

jest.setTimeout(120_000);

const ROOT = path.resolve(__dirname, '..');
const MODEL = 'tiny-dllm';
let cluster: Cluster;

function run(cmd: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const { DLLM_API_KEY: _k, DLLM_BASE_URL: _u, DLLM_MODEL: _m, ...base } = process.env;
    execFile(cmd, args, { cwd: ROOT, env: { ...base, ...env }, timeout: 90_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  cluster = await startCluster({
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    mode: 'src',
    models: [{ name: MODEL, dir: testModelDir().dir }],
    workers: 1,
    env: { WORKER_CONCURRENCY: '4' },
  });
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
});

const env = () => ({ DLLM_API_KEY: cluster.apiKey, DLLM_BASE_URL: `${cluster.gatewayUrl}/v1`, DLLM_MODEL: MODEL });

describe('examples/', () => {
  it('completions.mjs: completion with dLLM options, streaming and chat through the openai client', async () => {
    const r = await run(process.execPath, ['examples/completions.mjs'], env());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^completion: ".+" \(finish: (stop|length)\)$/m);
    const usage = JSON.parse(/^usage: (.*)$/m.exec(r.stdout)![1]);
    expect(usage.completion_tokens).toBeGreaterThan(0);
    const dllm = JSON.parse(/^dllm: (.*)$/m.exec(r.stdout)![1]);
    expect(dllm.forwards).toBeGreaterThan(0);
    expect(dllm.tpf).toBeCloseTo(usage.completion_tokens / dllm.forwards, 5);
    expect(r.stdout).toMatch(/^stream: [1-9]\d* chunks, ".+"$/m);
    expect(r.stdout).toMatch(/^chat: ".+"$/m);
  });

  it('completions.mjs without a key says what to set and exits 2', async () => {
    const r = await run(process.execPath, ['examples/completions.mjs'], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/set DLLM_API_KEY/);
  });

  it('curl.sh: models, a completion and an SSE stream', async () => {
    const r = await run('bash', ['examples/curl.sh'], env());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [models, completion] = r.stdout.split('\n').filter((l) => l.startsWith('{'));
    expect(JSON.parse(models).data.map((m: { id: string }) => m.id)).toContain(MODEL);
    const c = JSON.parse(completion);
    expect(c.object).toBe('text_completion');
    expect(c.dllm.forwards).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/^data: \{.*"text_completion"/m);
    expect(r.stdout).toMatch(/^data: \[DONE\]$/m);
  });

  it('gateway and worker start without a process warning (e.g. fastify FSTWRN004)', () => {
    for (const proc of [cluster.gateway, ...cluster.workers]) {
      const log = fs.readFileSync(proc.log, 'utf8');
      expect({ name: proc.name, warnings: log.split('\n').filter((l) => /\(node:\d+\) /.test(l)) }).toEqual({ name: proc.name, warnings: [] });
    }
  });

  it('the README points at the examples instead of inline code that does not run', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain('examples/completions.mjs');
    expect(readme).toContain('examples/curl.sh');
  });
});
