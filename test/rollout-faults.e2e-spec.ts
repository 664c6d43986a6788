// Issue 14 (and issue 13, fault 6) against real gateways, real workers, real Redis and a real ONNX
// model: each input from the bug reports, as reported.
//   1. no seed -> a random base seed per request, recorded in the result and the records
//   2. a worker that starts (or reconnects) after a registration serves the registry's latest
//   3. concurrent registrations through two gateways: latest = highest sequence, workers never go back
//   4. (the stream reader takeover is in libs/rl/src/trajectory-store.int-spec.ts, plus the query parameter here)
//   5. answers / patterns that can only match vacuously: 422 with param
//   6. POST /v1/rollouts/:id/cancel
//   13.6 a catastrophic-backtracking regex verifier neither freezes the worker nor fails it
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { trajectoryRecordSchema, type TrajectoryRecord } from '@dllm/rl';
import { startCluster, type Cluster } from '../apps/demo/src/cluster';
import { waitFor } from './helpers';
import { callApi } from './helpers/http';
import { writeFixtureModel } from './helpers/fixture-model';

jest.setTimeout(300_000);

const MODEL = 'fixture';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
let cluster: Cluster;
let v1Dir: string;
let versionsRoot: string;

const call = (base: string, method: string, url: string, body?: unknown, key = cluster.apiKey) => callApi(base, key, method, url, body);
const api = (method: string, url: string, body?: unknown, key?: string) => call(cluster.gatewayUrl, method, url, body, key);

const waitSettled = (id: string, ms = 180_000) =>
  waitFor(
    async () => {
      const r = await api('GET', `/v1/rollouts/${id}`);
      if (r.json.status === 'failed') throw new Error(`rollout failed: ${r.json.failed_reason}`);
      return r.json.status === 'completed' || r.json.status === 'cancelled' ? r.json : null;
    },
    ms,
    100,
    `rollout ${id}`,
  );

const jsonl = async (id: string): Promise<TrajectoryRecord[]> =>
  (await api('GET', `/v1/rollouts/${id}/trajectories`)).text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));

/** A copy of the v1 model directory registered as another version (same weights, hard links). */
function versionDir(version: string): string {
  const dir = path.join(versionsRoot, version);
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(v1Dir)) {
    if (f === 'dllm.json') continue;
    fs.linkSync(path.join(v1Dir, f), path.join(dir, f));
  }
  const m = JSON.parse(fs.readFileSync(path.join(v1Dir, 'dllm.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'dllm.json'), JSON.stringify({ ...m, version }));
  return dir;
}

const digits = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const prompt = (i: number) => `Q: ${'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz'.slice(i % 26, (i % 26) + 14)}?\nA:`;

beforeAll(async () => {
  v1Dir = writeFixtureModel({ name: MODEL, version: '1' });
  versionsRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-rollout-versions-'));
  cluster = await startCluster({
    redisUrl,
    mode: 'src',
    models: [{ name: MODEL, dir: v1Dir }],
    workers: 2,
    env: { WORKER_CONCURRENCY: '4', RATE_LIMIT_REQUESTS: '100000', WORKER_INTRA_OP_THREADS: '1' },
  });
}, 300_000);

afterAll(async () => {
  await cluster?.stop();
  for (const d of [v1Dir, versionsRoot]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

describe('rollout farm faults (issue 14)', () => {
  it('1. without a seed, each request draws its own base seed and records it', async () => {
    // the reported input: same prompt, G=4, temperature 1.5, no seed, twice
    const body = {
      model: MODEL,
      groupSize: 4,
      prompts: [{ prompt: 'Q: 1+1=?\nA:', answer: '2' }],
      verifier: { name: 'numeric' },
      sampling: { temperature: 1.5 },
      decoding: { maxNewTokens: 8, stop: digits },
    };
    const a = await api('POST', '/v1/rollouts', body);
    const b = await api('POST', '/v1/rollouts', body);
    const [va, vb] = [await waitSettled(a.json.id), await waitSettled(b.json.id)];
    expect(va.result.seedDrawn).toBe(true);
    expect(vb.result.seedDrawn).toBe(true);
    expect(va.result.seed).not.toBe(vb.result.seed);
    for (const [v, id] of [
      [va, a.json.id],
      [vb, b.json.id],
    ] as const) {
      const recs = await jsonl(id);
      expect(recs.map((r) => r.seed)).toEqual(recs.map((r) => (v.result.seed + r.groupIndex * 4 + r.sampleIndex) >>> 0));
    }
    const seedsA = (await jsonl(a.json.id)).map((r) => r.seed);
    expect(seedsA).not.toEqual([0, 1, 2, 3]);
    // a given seed is kept and reported as not drawn
    const c = await api('POST', '/v1/rollouts', { ...body, sampling: { temperature: 1.5, seed: 77 } });
    const vc = await waitSettled(c.json.id);
    expect(vc.result).toMatchObject({ seed: 77, seedDrawn: false });
  });

  it('5. answers and patterns that can only match vacuously are a 422 with param', async () => {
    const base = { model: MODEL, groupSize: 4, sampling: { temperature: 1 } };
    const cases: Array<[unknown, string]> = [
      // the reported input: an empty answer with the regex verifier
      [{ ...base, prompts: [{ prompt: 'Q: 1+1=?\nA:', answer: '' }], verifier: { name: 'regex' } }, 'prompts.0.answer'],
      [{ ...base, prompts: [{ prompt: 'Q', answer: 'a*' }], verifier: { name: 'regex' } }, 'prompts.0.answer'],
      [
        {
          ...base,
          prompts: [
            { prompt: 'Q', answer: '2' },
            { prompt: 'Q2', answer: '^' },
          ],
          verifier: { name: 'regex' },
        },
        'prompts.1.answer',
      ],
      [{ ...base, prompts: [{ prompt: 'Q' }], verifier: { name: 'regex', params: { pattern: '(x)?' } } }, 'verifier'],
      [{ ...base, prompts: [{ prompt: 'Q' }], verifier: { name: 'regex', params: { pattern: '' } } }, 'verifier'],
      [{ ...base, prompts: [{ prompt: 'Q', answer: '   ' }], verifier: { name: 'exact' } }, 'prompts.0.answer'],
      [{ ...base, prompts: [{ prompt: 'Q', answer: '' }], verifier: { name: 'exact-string' } }, 'prompts.0.answer'],
      [{ ...base, prompts: [{ prompt: 'Q', answer: '' }], verifier: { name: 'numeric' } }, 'prompts.0.answer'],
      [{ ...base, prompts: [{ prompt: 'Q', answer: '' }], verifier: { name: 'task:arith' } }, 'prompts.0.answer'],
      // RE2 cannot compile backreferences: refused at submission, never a failing worker
      [{ ...base, prompts: [{ prompt: 'Q', answer: '(a)\\1' }], verifier: { name: 'regex' } }, 'prompts.0.answer'],
    ];
    for (const [body, param] of cases) {
      const r = await api('POST', '/v1/rollouts', body);
      expect({ status: r.status, body }).toMatchObject({ status: 422 });
      expect(String(r.json.error.param)).toContain(param);
    }
    const empty = await api('POST', '/v1/rollouts', cases[0][0]);
    expect(empty.json.error.message).toMatch(/empty/);
  });

  it('13.6. a catastrophic-backtracking pattern fails no sample and never blocks the worker', async () => {
    // 64-character responses that never contain Q: /^(.*)*Q$/ backtracks exponentially on a backtracking engine
    const created = await api('POST', '/v1/rollouts', {
      model: MODEL,
      groupSize: 4,
      prompts: [0, 1].map((i) => ({ prompt: prompt(i) })),
      verifier: { name: 'regex', params: { pattern: '^(.*)*Q$' } },
      sampling: { temperature: 3, seed: 5 },
      decoding: { maxNewTokens: 64, blockSize: 8, subBlockSize: 4 },
    });
    expect(created.status).toBe(202);
    let worst = 0;
    let settled: any = null;
    const t0 = Date.now();
    while (!settled && Date.now() - t0 < 120_000) {
      for (const w of cluster.workers) {
        const t = Date.now();
        const r = await fetch(`http://127.0.0.1:${w.port}/healthz`, { signal: AbortSignal.timeout(5000) });
        expect(r.status).toBe(200);
        worst = Math.max(worst, Date.now() - t);
      }
      const v = await api('GET', `/v1/rollouts/${created.json.id}`);
      if (v.json.status === 'completed') settled = v.json;
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(settled).not.toBeNull();
    expect(worst).toBeLessThan(2000);
    const recs = await jsonl(created.json.id);
    expect(recs).toHaveLength(8);
    // responses long enough for exponential backtracking (before the fix this froze the worker: health timed out)
    expect(Math.max(...recs.map((r) => r.responseLength))).toBeGreaterThan(20);
    for (const r of recs) {
      expect(['completed', 'truncated']).toContain(r.status); // the verifier ran; no sample failed
      expect(r.correct).toBe(!r.truncated && /Q$/.test(r.responseText.trim()));
      expect(r.error).toBeNull();
    }
  });

  it('6. cancel: running groups stop, queued ones skip, finished trajectories stay, the stream ends', async () => {
    const created = await api('POST', '/v1/rollouts', {
      model: MODEL,
      groupSize: 4,
      prompts: Array.from({ length: 40 }, (_, i) => ({ id: `q${i}`, prompt: prompt(i), answer: '[0-9]' })),
      verifier: { name: 'regex' },
      sampling: { temperature: 3, seed: 9 },
      decoding: { maxNewTokens: 256, blockSize: 8, subBlockSize: 4 },
    });
    const id = created.json.id;
    await waitFor(async () => (await api('GET', `/v1/rollouts/${id}`)).json.progress.finished >= 1, 120_000, 20, 'first group');
    expect((await api('POST', `/v1/rollouts/${id}/cancel`, undefined, cluster.otherApiKey)).status).toBe(404); // scoped to the owner
    const c = await api('POST', `/v1/rollouts/${id}/cancel`);
    expect(c.status).toBe(200);
    expect(['cancelling', 'cancelled']).toContain(c.json.status);
    const v = await waitSettled(id, 120_000);
    expect(v.status).toBe('cancelled');
    expect(v.result.cancelled).toBe(true);
    const recs = await jsonl(id);
    const groups = new Set(recs.map((r) => r.groupIndex));
    expect(groups.size).toBeGreaterThanOrEqual(1);
    expect(groups.size).toBeLessThan(40); // queued groups were skipped
    expect(recs.some((r) => r.status === 'completed' || r.status === 'truncated')).toBe(true); // finished trajectories kept
    // groups running at the cancel stopped at a block boundary: their samples are aborted with partial output, the group incomplete
    const aborted = recs.filter((r) => r.status === 'aborted');
    expect(aborted.length).toBeGreaterThan(0);
    for (const r of aborted) {
      expect(r.responseLength).toBeLessThan(256);
      expect(r.filterReason).toBe('incomplete');
    }
    for (const r of recs) expect(trajectoryRecordSchema.safeParse(r).success).toBe(true);
    // the stream ends: a reader gets every record and done
    let cursor: string | null = null;
    let n = 0;
    for (let i = 0; i < 50; i++) {
      const page: any = (await api('GET', `/v1/rollouts/${id}/stream?group=learner&count=100${cursor ? `&cursor=${cursor}` : ''}`)).json;
      n += page.records.length;
      if (page.done) break;
      cursor = page.cursor;
    }
    expect(n).toBe(recs.length);
    // cancelling again is harmless
    expect((await api('POST', `/v1/rollouts/${id}/cancel`)).json.status).toBe('cancelled');
  });

  it('4. the stream takes over a dead reader’s records through the API (claim_idle_ms)', async () => {
    const created = await api('POST', '/v1/rollouts', {
      model: MODEL,
      groupSize: 4,
      prompts: [0, 1, 2].map((i) => ({ prompt: prompt(i), answer: '[0-9]' })),
      verifier: { name: 'regex' },
      sampling: { seed: 3 },
      decoding: { maxNewTokens: 8 },
    });
    const id = created.json.id;
    await waitSettled(id);
    const a: any = (await api('GET', `/v1/rollouts/${id}/stream?group=L2&consumer=pod-a&count=5`)).json;
    expect(a.records).toHaveLength(5); // pod-a dies
    let cursor: string | null = null;
    let n = 0;
    let done = false;
    for (let i = 0; i < 100 && !done; i++) {
      const page: any = (await api('GET', `/v1/rollouts/${id}/stream?group=L2&consumer=pod-b&count=4&claim_idle_ms=200${cursor ? `&cursor=${cursor}` : ''}`))
        .json;
      n += page.records.length;
      done = page.done;
      cursor = page.cursor;
      if (!page.records.length) await new Promise((r) => setTimeout(r, 60));
    }
    expect(done).toBe(true);
    expect(n).toBe(12);
    expect((await api('GET', `/v1/rollouts/${id}/stream?group=L2&claim_idle_ms=1`)).status).toBe(400);
  });

  it('2. a worker that starts, or reconnects, after a registration serves the registry’s latest version', async () => {
    const reg = await api('POST', `/v1/models/${MODEL}/versions`, { dir: versionDir('boot-2') });
    expect(reg.status).toBe(201);
    // a worker started after the announcement: it loads its boot dir (version 1), then the registry's latest, before any job
    const late = await cluster.startWorker();
    expect(fs.readFileSync(late.log, 'utf8')).toMatch(/hot swap \(boot\): fixture now serves version boot-2 \(#\d+\)/);
    const created = await api('POST', '/v1/rollouts', {
      model: MODEL,
      groupSize: 2,
      prompts: Array.from({ length: 6 }, (_, i) => ({ prompt: prompt(i), answer: '[0-9]' })),
      verifier: { name: 'regex' },
      sampling: { seed: 1 },
      decoding: { maxNewTokens: 8 },
    });
    await waitSettled(created.json.id);
    for (const r of await jsonl(created.json.id)) expect(r.policy).toMatchObject({ version: 'boot-2', seq: reg.json.seq });

    // reconnect: every worker is stopped, its subscription dropped, a version registered while it is away, then it resumes
    const procs = cluster.workers.filter((w) => w.child.exitCode === null);
    const admin = new Redis(redisUrl);
    try {
      for (const w of procs) w.child.kill('SIGSTOP');
      const list = String(await admin.client('LIST'));
      const ids = list
        .split('\n')
        .filter((l) => l.includes(`name=dllm-worker-models:${cluster.queuePrefix} `))
        .map((l) => /(?:^| )id=(\d+)/.exec(l)?.[1])
        .filter(Boolean) as string[];
      expect(ids.length).toBe(procs.length);
      for (const cid of ids) await admin.client('KILL', 'ID', cid);
      const reg3 = await api('POST', `/v1/models/${MODEL}/versions`, { dir: versionDir('away-3') });
      expect(reg3.status).toBe(201);
    } finally {
      for (const w of procs) w.child.kill('SIGCONT');
      admin.disconnect();
    }
    for (const w of procs)
      await waitFor(
        () => /hot swap \(reconnect\): fixture now serves version away-3/.test(fs.readFileSync(w.log, 'utf8')),
        30_000,
        100,
        `${w.name} reconnect swap`,
      );
  });

  it('3. concurrent registrations through two gateways: latest is the highest sequence, workers never go back', async () => {
    const second = await cluster.startGateway();
    const rounds = 20;
    for (let round = 0; round < rounds; round++) {
      const dirs = Array.from({ length: 6 }, (_, i) => versionDir(`race-${round}-${i}`));
      const res = await Promise.all(dirs.map((dir, i) => call(i % 2 ? second.url : cluster.gatewayUrl, 'POST', `/v1/models/${MODEL}/versions`, { dir })));
      for (const r of res) expect(r.status).toBe(201);
      const list = await api('GET', `/v1/models/${MODEL}/versions`);
      const top = list.json.data.reduce((a: any, b: any) => (b.seq > a.seq ? b : a));
      expect({ round, latest: list.json.latest }).toEqual({ round, latest: top.version });
      const seqs = list.json.data.map((d: any) => d.seq);
      expect(new Set(seqs).size).toBe(seqs.length);
    }
    // every worker's swaps went up in sequence, ending on the newest
    const list = await api('GET', `/v1/models/${MODEL}/versions`);
    const newest = list.json.data.reduce((a: any, b: any) => (b.seq > a.seq ? b : a));
    for (const w of cluster.workers.filter((x) => x.child.exitCode === null)) {
      await waitFor(
        () => fs.readFileSync(w.log, 'utf8').includes(`now serves version ${newest.version} (#${newest.seq})`),
        60_000,
        100,
        `${w.name} on the newest version`,
      );
      const swaps = [...fs.readFileSync(w.log, 'utf8').matchAll(/now serves version \S+ \(#(\d+)\)/g)].map((m) => Number(m[1]));
      for (let i = 1; i < swaps.length; i++) expect(swaps[i]).toBeGreaterThan(swaps[i - 1]);
    }
  });
});
