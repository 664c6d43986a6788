// RL rollouts end to end: real gateway + worker processes, real Redis, a real ONNX model.
// A rollout of several groups returns complete trajectories whose advantages match the LightningRL
// formulas recomputed here; filtered groups carry their reason; the learner's cursor stream
// delivers each record once per consumer group; a version swap mid-rollout tags samples with the
// version that produced them (replayed here on that version: no stale KV); bad requests get 4xx.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Engine } from '@dllm/engine';
import { buildTinyModel } from '@dllm/model';
import { trajectoryRecordSchema, type TrajectoryRecord } from '@dllm/rl';
import { startCluster, type Cluster } from '../apps/demo/src/cluster';
import { waitFor } from './helpers';
import { callApi } from './helpers/http';
import { writeFixtureModel } from './helpers/fixture-model';

jest.setTimeout(180_000);

const MODEL = 'fixture';
let cluster: Cluster;
let v1Dir: string;
let v2Dir: string;

const api = (method: string, url: string, body?: unknown, key = cluster.apiKey) => callApi(cluster.gatewayUrl, key, method, url, body);

const waitDone = (id: string, ms = 120_000) =>
  waitFor(
    async () => {
      const r = await api('GET', `/v1/rollouts/${id}`);
      if (r.json.status === 'failed') throw new Error(`rollout failed: ${r.json.failed_reason}`);
      return r.json.status === 'completed' ? r.json : null;
    },
    ms,
    100,
    `rollout ${id}`,
  );

// LightningRL, written out again from the spec (population std in groups, sample std over the batch)
const z = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / xs.length);
  return xs.every((x) => x === xs[0]) ? xs.map(() => 0) : xs.map((x) => (x - m) / sd);
};

const digits = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const request = (extra: Record<string, unknown> = {}) => ({
  model: MODEL,
  groupSize: 4,
  // a group whose answers can never match (all wrong), one that always matches, and mixed ones
  prompts: [
    { id: 'never', prompt: 'Q: abcdefghijklmn?\nA:', verifier: { name: 'regex', params: { pattern: 'ZZZ' } } },
    // any character: correct unless the response is empty (a pattern matching the empty string is refused as vacuous)
    { id: 'always', prompt: 'Q: bcdefghijklmno?\nA:', verifier: { name: 'regex', params: { pattern: '[\\s\\S]' } } },
    { id: 'two', prompt: 'Q: cdefghijklmnop?\nA:', answer: '^.{2,}' },
    { id: 'three', prompt: 'Q: defghijklmnopq?\nA:', answer: '^.{3,}' },
  ],
  verifier: { name: 'regex' },
  // the fixture model predicts digits with a wide margin: temperature 3 spreads the samples, and a
  // digit ends a response (stop strings), so lengths and TPF differ inside a group
  sampling: { temperature: 3, seed: 1234 },
  decoding: { maxNewTokens: 12, blockSize: 8, subBlockSize: 4, stop: digits },
  ...extra,
});

beforeAll(async () => {
  v1Dir = writeFixtureModel({ name: MODEL, version: '1' });
  v2Dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-rollout-v2-'));
  // version 2: other weights, same tokenizer and vocabulary
  buildTinyModel(v2Dir, { seed: 99, config: { vocab_size: 128 }, manifest: { name: MODEL, version: '2', block_size: 8 } });
  cluster = await startCluster({
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    mode: 'src',
    models: [{ name: MODEL, dir: v1Dir }],
    workers: 1,
    env: { WORKER_CONCURRENCY: '4', RATE_LIMIT_REQUESTS: '100000' },
  });
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
  for (const d of [v1Dir, v2Dir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

describe('rollouts', () => {
  let id: string;
  let records: TrajectoryRecord[];

  it('runs a rollout of several groups into complete trajectories with LightningRL advantages', async () => {
    const created = await api('POST', '/v1/rollouts', request());
    expect(created.status).toBe(202);
    id = created.json.id;
    const view = await waitDone(id);
    const jsonl = await api('GET', `/v1/rollouts/${id}/trajectories`);
    expect(jsonl.status).toBe(200);
    records = jsonl.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(records).toHaveLength(16);
    for (const r of records) {
      const ok = trajectoryRecordSchema.safeParse(r);
      if (!ok.success) throw new Error(JSON.stringify(ok.error.issues));
      expect(r.status === 'completed' || r.status === 'truncated').toBe(true);
      expect(r.stepMap).toHaveLength(r.responseLength);
      expect(r.logprobs).toHaveLength(r.responseLength);
      expect(r.tpf).toBeCloseTo(r.numForwards ? r.responseLength / r.numForwards : 0, 12);
      expect(r.policy).toEqual({ name: MODEL, version: '1', seq: 0 });
      expect(r.promptTokenIds).toHaveLength(r.promptTokens);
      expect(r.decoding).toMatchObject({ temperature: 3, maxNewTokens: 12, blockSize: 8 });
      if (r.truncated) expect(r.correct).toBe(false);
    }
    // seeds: base + group * G + sample
    expect(records.map((r) => r.seed)).toEqual(records.map((r) => 1234 + r.groupIndex * 4 + r.sampleIndex));
    // prompt KV shared inside each group: the 16-char prompts' two full blocks are prefilled once per group
    expect(view.result.tokens.prefixHit).toBeGreaterThan(0);

    // recompute the rewards and advantages from the records
    const groups = [0, 1, 2, 3].map((g) => records.filter((r) => r.groupIndex === g).sort((a, b) => a.sampleIndex - b.sampleIndex));
    const byId = Object.fromEntries(view.result.groups.map((g: any) => [g.promptId, g]));
    expect(byId.never).toMatchObject({ kept: false, filterReason: 'all_wrong', correct: 0 });
    const kept: { rec: TrajectoryRecord; r: number }[] = [];
    for (const g of groups) {
      const acc = g.map((r) => (r.correct ? 1 : 0));
      const tpf = g.map((r) => r.tpf);
      const za = z(acc);
      const zt = z(tpf);
      const range = Math.max(...tpf) - Math.min(...tpf);
      const reason = acc.every((a) => a === 0) ? 'all_wrong' : range < 0.01 ? 'tpf_range_below_0.01' : null;
      expect(view.result.groups[g[0].groupIndex].filterReason).toBe(reason);
      g.forEach((rec, i) => {
        expect(rec.reward!.accuracy).toBeCloseTo(za[i], 9);
        expect(rec.reward!.tpf).toBeCloseTo(zt[i], 9);
        expect(rec.reward!.total).toBeCloseTo(za[i] + zt[i], 9);
        expect(rec.kept).toBe(reason === null);
        expect(rec.filterReason).toBe(reason);
        if (reason === null) kept.push({ rec, r: za[i] + zt[i] });
        else expect(rec.advantage).toBeNull();
      });
    }
    expect(kept.length).toBeGreaterThanOrEqual(4); // at least the 'always' group (all correct: TPF signal only)
    const mean = kept.reduce((a, k) => a + k.r, 0) / kept.length;
    const sd = Math.sqrt(kept.reduce((a, k) => a + (k.r - mean) ** 2, 0) / (kept.length - 1));
    for (const k of kept) expect(k.rec.advantage!).toBeCloseTo((k.r - mean) / Math.max(sd, 1e-8), 9);
    expect(view.result.keptSamples).toBe(kept.length);
  });

  it('streams the records to each consumer group exactly once with a cursor', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 20; i++) {
      const page: any = (await api('GET', `/v1/rollouts/${id}/stream?group=learner&count=5${cursor ? `&cursor=${cursor}` : ''}`)).json;
      for (const r of page.records) seen.push(`${r.groupIndex}.${r.sampleIndex}`);
      if (page.done) break;
      cursor = page.cursor;
    }
    expect(seen).toHaveLength(16);
    expect(new Set(seen).size).toBe(16);
    // acknowledged: never again for this group; another group gets everything
    expect((await api('GET', `/v1/rollouts/${id}/stream?group=learner`)).json.records).toEqual([]);
    expect((await api('GET', `/v1/rollouts/${id}/stream?group=other&count=100`)).json.records).toHaveLength(16);
    expect((await api('GET', `/v1/rollouts/${id}/stream?group=learner&cursor=nope`)).status).toBe(400);
    expect((await api('GET', `/v1/rollouts/${id}/stream`)).status).toBe(400);
    // another owner sees nothing
    expect((await api('GET', `/v1/rollouts/${id}`, undefined, cluster.otherApiKey)).status).toBe(404);
  });

  it('dynamic sampling: over-samples to refill after filtering, stops at the target, reports leftovers as batch_full', async () => {
    // 2 groups wanted; prompt 0 can never be right (filtered), prompts 1..5 nearly always are (fixed seeds: deterministic)
    const base = request();
    // '[\s\S]': a sample is right unless its response is empty (a pattern matching the empty string is
    // refused as vacuous), so these groups are rarely all wrong; the TPF-range filter is off
    const prompts = [
      base.prompts[0],
      ...Array.from({ length: 5 }, (_, i) => ({
        id: `ok${i}`,
        prompt: `Q: ${'klmnopqrstuvwxyz'.slice(i, i + 12)}?\nA:`,
        verifier: { name: 'regex', params: { pattern: '[\\s\\S]' } },
      })),
    ];
    const created = await api('POST', '/v1/rollouts', request({ prompts, targetGroups: 2, reward: { minTpfRange: 0 } }));
    const view = await waitDone(created.json.id);
    const r = view.result;
    expect(r.targetGroups).toBe(2);
    expect(r.launchedGroups).toBeGreaterThan(2); // the filtered group was replaced from the reserve
    const byId = Object.fromEntries(r.groups.map((g: any) => [g.promptId, g]));
    expect(byId.never).toMatchObject({ kept: false, filterReason: 'all_wrong' });
    expect(r.keptGroups).toBe(2);
    for (const g of r.groups) if (!g.kept && g.promptId !== 'never') expect(['batch_full', 'tpf_range_below_0.01']).toContain(g.filterReason);
    expect(r.groups.filter((g: any) => g.filterReason === 'batch_full').length + r.keptGroups + 1).toBeGreaterThanOrEqual(3);
    // the records agree with the summary, and only kept samples carry advantages
    const recs: TrajectoryRecord[] = (await api('GET', `/v1/rollouts/${created.json.id}/trajectories`)).text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(recs.filter((x) => x.kept)).toHaveLength(r.keptSamples);
    for (const x of recs) expect(x.advantage === null).toBe(!x.kept);
  });

  it('rejects bad requests with clear 4xx errors', async () => {
    const bad = async (body: unknown) => {
      const r = await api('POST', '/v1/rollouts', body);
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      return r.json.error.message as string;
    };
    expect(await bad(request({ groupSize: 1 }))).toMatch(/groupSize must be >= 2/);
    expect(await bad(request({ verifier: { name: 'magic' } }))).toMatch(/unknown verifier 'magic'/);
    expect(await bad({ ...request(), verifier: { name: 'exact' }, prompts: [{ prompt: 'Q' }] })).toMatch(/prompts\.0\.answer: missing reference answer/);
    expect(await bad(request({ groupSize: 64, prompts: Array.from({ length: 1000 }, (_, i) => ({ prompt: `q${i}`, answer: '1' })) }))).toMatch(
      /more than the limit/,
    );
    expect(await bad(request({ sampling: { temperature: 0 } }))).toMatch(/greedy/);
    expect(await bad(request({ decoding: { temperature: 1 } }))).toMatch(/set 'temperature' in sampling/);
    expect(await bad(request({ model: 'nope' }))).toMatch(/does not exist/);
    expect((await api('GET', '/v1/rollouts/ro-00000000-0000-0000-0000-000000000000')).status).toBe(404);
  });

  it('a version swap mid-rollout: samples carry the version that made them, replay on it exactly, and stale ones are marked', async () => {
    const reg1 = await api('POST', `/v1/models/${MODEL}/versions`, { dir: v1Dir });
    expect(reg1.status).toBe(201);
    expect(reg1.json).toMatchObject({ version: '1', seq: 1 });
    expect((await api('POST', `/v1/models/${MODEL}/versions`, { dir: v1Dir })).status).toBe(409);
    expect((await api('POST', `/v1/models/${MODEL}/versions`, { dir: '/nonexistent' })).status).toBe(422);

    // long enough (24 groups x 4 samples x 64 tokens, 4 groups at a time) that the swap lands mid-rollout
    const prompts = Array.from({ length: 24 }, (_, i) => ({
      id: `q${i}`,
      prompt: `Q: ${'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz'.slice(i, i + 14)}?\nA:`,
      verifier: { name: 'regex', params: { pattern: '[0-9]' } },
    }));
    const created = await api(
      'POST',
      '/v1/rollouts',
      request({ prompts, decoding: { maxNewTokens: 64, blockSize: 8, subBlockSize: 4 }, policy: { maxStaleness: 0, onStale: 'mark' } }),
    );
    expect(created.status).toBe(202);
    // swap once the first groups are done
    await waitFor(async () => (await api('GET', `/v1/rollouts/${created.json.id}`)).json.progress.finished >= 1, 60_000, 10, 'first group');
    const reg2 = await api('POST', `/v1/models/${MODEL}/versions`, { dir: v2Dir, version: '2' });
    expect(reg2.json).toMatchObject({ version: '2', seq: 2 });
    expect((await api('GET', `/v1/rollouts/${created.json.id}`)).json.progress.finished).toBeLessThan(24); // the swap really is mid-rollout
    const view = await waitDone(created.json.id);
    const recs: TrajectoryRecord[] = (await api('GET', `/v1/rollouts/${created.json.id}/trajectories`)).text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const versions = new Set(recs.map((r) => r.policy.version));
    expect(versions).toEqual(new Set(['1', '2']));
    expect(view.result.policyVersions.sort()).toEqual([`${MODEL}@1`, `${MODEL}@2`]);
    // v1 samples are one version behind the newest (bound 0): marked stale, their groups filtered 'stale'
    for (const r of recs) {
      expect(r.stale).toBe(r.policy.version === '1');
      expect(r.policy.seq).toBe(Number(r.policy.version)); // registry sequence numbers 1 and 2
      if (r.stale) expect(r.filterReason).toBe('stale');
    }
    // replay a few samples of each version on an engine of that version alone: same tokens (no KV of the other version leaked in)
    for (const [version, dir] of [
      ['1', v1Dir],
      ['2', v2Dir],
    ] as const) {
      const engine = await Engine.create({ modelDir: dir, intraOpThreads: 1 });
      try {
        for (const r of recs.filter((x) => x.policy.version === version).slice(0, 3)) {
          const again = await engine.generate({ prompt: r.prompt, options: { ...(r.decoding as object), trajectory: false } });
          expect(again.tokenIds).toEqual(r.responseTokenIds);
          // what an outside learner does: rebuild the input from the recorded ids and seed
          const fromIds = await engine.generate({ promptIds: r.promptTokenIds, options: { ...(r.decoding as object), seed: r.seed, trajectory: true } });
          expect(fromIds.tokenIds).toEqual(r.responseTokenIds);
          expect(fromIds.trajectory!.stepMap).toEqual(r.stepMap);
          // log-probs agree to float rounding, not bit for bit: the worker ran this sample inside a batch, and a
          // different batch shape takes other matmul kernels (seen: 2e-8 apart with tiny-dllm 1.3.0)
          const lp = fromIds.trajectory!.logprobs!;
          expect(lp).toHaveLength(r.logprobs!.length);
          lp.forEach((x, j) => expect(Math.abs(x - r.logprobs![j])).toBeLessThan(1e-5));
        }
      } finally {
        await engine.close();
      }
    }
    const list = await api('GET', `/v1/models/${MODEL}/versions`);
    expect(list.json).toMatchObject({
      latest: '2',
      data: [
        { version: '1', seq: 1 },
        { version: '2', seq: 2 },
      ],
    });
  });

  it('registers a version by upload; the worker hot-swaps to it', async () => {
    const v3 = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-rollout-v3-'));
    try {
      buildTinyModel(v3, { seed: 98, config: { vocab_size: 128 }, manifest: { name: MODEL, version: '3', block_size: 8 } });
      const form = new FormData();
      for (const f of ['dllm.json', 'model.onnx', 'tokenizer.json']) form.append(f, new Blob([fs.readFileSync(path.join(v3, f))]), f);
      const res = await fetch(`${cluster.gatewayUrl}/v1/models/${MODEL}/versions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${cluster.apiKey}` },
        body: form,
      });
      const body: any = await res.json();
      expect(res.status).toBe(201);
      expect(body).toMatchObject({ version: '3', seq: 3 });
      expect(body.dir.startsWith(cluster.storageDir)).toBe(true);
      await waitFor(() => fs.readFileSync(cluster.workers[0].log, 'utf8').includes('now serves version 3'), 30_000, 50, 'hot swap to version 3');
      // an upload missing a part is refused and leaves nothing behind
      const bad = new FormData();
      bad.append('dllm.json', new Blob([fs.readFileSync(path.join(v3, 'dllm.json'))]), 'dllm.json');
      const r2 = await fetch(`${cluster.gatewayUrl}/v1/models/${MODEL}/versions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${cluster.apiKey}` },
        body: bad,
      });
      expect(r2.status).toBe(422);
    } finally {
      fs.rmSync(v3, { recursive: true, force: true });
    }
  });
});
