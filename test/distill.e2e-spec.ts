// Distillation end to end: real gateway + worker processes, real Redis, a real ONNX model. The job
// decodes task-suite questions with the safe teacher configuration and writes a dataset that the
// training tool's own loader (tools/train/train.py TrainSet + Vocab, torch stubbed out) reads.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startCluster, type Cluster } from '../apps/demo/src/cluster';
import { waitFor } from './helpers';
import { callApi } from './helpers/http';
import { buildTinyModel } from '@dllm/model';
import { BOS_ID, buildTokenizerJson, EOS_ID, MASK_ID, PAD_ID, VOCAB_SIZE } from '@dllm/tasks';

jest.setTimeout(180_000);

const MODEL = 'fixture';
let cluster: Cluster;
let modelDir: string;
let dataDir: string;

const api = (method: string, url: string, body?: unknown) => callApi(cluster.gatewayUrl, cluster.apiKey, method, url, body);

const hasPython = (() => {
  try {
    execFileSync('python3', ['-c', 'print(1)']);
    return true;
  } catch {
    return false;
  }
})();

beforeAll(async () => {
  // a tiny random-weight model with the task suite's tokenizer (the one tools/train trains with)
  modelDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-distill-model-'));
  buildTinyModel(modelDir, {
    seed: 5,
    config: { vocab_size: VOCAB_SIZE },
    tokenizer: JSON.parse(buildTokenizerJson()),
    manifest: { name: MODEL, version: '1', block_size: 8, tokens: { pad: PAD_ID, eos: EOS_ID, mask: MASK_ID, bos: BOS_ID } },
  });
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-distill-data-'));
  cluster = await startCluster({
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    mode: 'src',
    models: [{ name: MODEL, dir: modelDir }],
    workers: 1,
    env: { RATE_LIMIT_REQUESTS: '100000' },
  });
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
  for (const d of [modelDir, dataDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

it('writes a dataset the training tool reads, with progress, step maps and masking parameters', async () => {
  // an untrained model rarely emits EOS: stop strings end its responses (a trained teacher stops by EOS)
  const created = await api('POST', '/v1/distill', {
    model: MODEL,
    tasks: [
      { family: 'arith', n: 10, seed: 3 },
      { family: 'string', n: 6, seed: 3 },
    ],
    decoding: { maxNewTokens: 16, blockSize: 8, stop: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ' ', 'e', 'a', 'o', '=', '#'] },
    onlyCorrect: false,
    record: { stepMap: true, confidence: true },
    concurrency: 4,
  });
  expect(created.status).toBe(202);
  expect(created.json.total).toBe(16);
  const id = created.json.id;
  const progress = new Set<string>();
  const view = await waitFor(
    async () => {
      const v = (await api('GET', `/v1/distill/${id}`)).json;
      progress.add(JSON.stringify(v.progress));
      if (v.status === 'failed') throw new Error(v.failed_reason);
      return v.status === 'completed' ? v : null;
    },
    120_000,
    50,
    'distillation',
  );
  expect(view.progress).toEqual({ done: 16, total: 16, kept: view.result.kept });
  expect(view.result.files.sort()).toEqual(['arith-train.jsonl', 'distill.json', 'string-train.jsonl', 'tokenizer.json']);
  expect(view.result.kept).toBeGreaterThan(0);
  expect(view.result.kept + view.result.dropped.truncated + view.result.dropped.failed).toBe(16);

  for (const f of view.result.files) fs.writeFileSync(path.join(dataDir, f), (await api('GET', `/v1/distill/${id}/files/${f}`)).text);
  // Names from Object.prototype are unknown files (404), never a lookup into the prototype (was a 500).
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
    const r = await api('GET', `/v1/distill/${id}/files/${name}`);
    expect([r.status, r.json?.error?.code]).toEqual([404, 'not_found']);
  }
  const rows = ['arith', 'string'].flatMap((fam) =>
    fs
      .readFileSync(path.join(dataDir, `${fam}-train.jsonl`), 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l)),
  );
  expect(rows.length).toBe(view.result.kept);
  for (const r of rows) {
    expect(r.prompt).toMatch(/\nA:$/);
    expect(typeof r.solution).toBe('string');
    expect(r.stepMap).toHaveLength(r.teacher.tokenIds.length);
    expect(r.confidence).toHaveLength(r.teacher.tokenIds.length);
    // threshold 1.0: one token per decoding step
    expect(new Set(r.stepMap).size).toBe(r.stepMap.length);
    expect(r.teacher).toMatchObject({ name: MODEL, version: '1' });
  }
  const meta = JSON.parse(fs.readFileSync(path.join(dataDir, 'distill.json'), 'utf8'));
  expect(meta.decoding).toMatchObject({ temperature: 0, threshold: 1 });
  expect(meta.certaintyForcing).toEqual({ blockSize: 8, maskProb: 0.5, complementary: true, entropyWeight: 1, entropyTemperature: 0.5 });

  if (hasPython) {
    // the trainer's own loader (train.py imports torch at the top; its data code does not use it)
    const script = [
      'import sys, json',
      'from unittest import mock',
      "for m in ['torch', 'torch.nn', 'torch.nn.functional']: sys.modules[m] = mock.MagicMock()",
      `sys.path.insert(0, ${JSON.stringify(path.resolve(__dirname, '../tools/train'))})`,
      'import train',
      `d = ${JSON.stringify(dataDir)}`,
      "v = train.Vocab(d + '/tokenizer.json')",
      "s = train.TrainSet(d, v, {'arith': 0.5, 'string': 0.5})",
      'print(json.dumps({f: len(rows) for f, rows in s.by_family.items()}))',
    ].join('\n');
    const out = execFileSync('python3', ['-c', script], { encoding: 'utf8' }).trim().split('\n').pop()!;
    const counts = JSON.parse(out);
    expect(counts.arith + counts.string).toBe(rows.length);
  }
});

it('rejects bad distillation requests with 4xx', async () => {
  const bad = async (body: unknown) => {
    const r = await api('POST', '/v1/distill', body);
    expect(r.status).toBe(422);
    return r.json.error.message as string;
  };
  expect(await bad({ model: MODEL })).toMatch(/no question to distill/);
  expect(await bad({ model: MODEL, tasks: [{ family: 'poetry', n: 1 }] })).toMatch(/unknown task family/);
  expect(await bad({ model: MODEL, questions: [{ prompt: 'Q' }] })).toMatch(/onlyCorrect needs a reference answer/);
  expect(await bad({ model: MODEL, questions: [{ prompt: 'Q', answer: '1' }], decoding: { threshold: 0.7 } })).toMatch(/allowFastTeacher/);
});

it('a hot swap mid-job: every row names the version that decoded it, and the result counts rows per version', async () => {
  // (was: rows after the swap were labelled with the version served when the job started)
  const v2Dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-distill-v2-'));
  try {
    buildTinyModel(v2Dir, {
      seed: 6,
      config: { vocab_size: VOCAB_SIZE },
      tokenizer: JSON.parse(buildTokenizerJson()),
      manifest: { name: MODEL, version: '2', block_size: 8, tokens: { pad: PAD_ID, eos: EOS_ID, mask: MASK_ID, bos: BOS_ID } },
    });
    expect((await api('POST', `/v1/models/${MODEL}/versions`, { dir: modelDir })).status).toBe(201);
    const created = await api('POST', '/v1/distill', {
      model: MODEL,
      // long enough that the swap lands mid-job; stop strings end the untrained models' responses (a
      // truncated response is no row, and a model that never stops would leave no row to check)
      tasks: [{ family: 'arith', n: 3000, seed: 11 }],
      decoding: { maxNewTokens: 16, blockSize: 8, stop: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ' ', 'e', 'a', 'o', '=', '#'] },
      onlyCorrect: false,
      concurrency: 2,
    });
    expect(created.status).toBe(202);
    const id = created.json.id;
    await waitFor(async () => ((await api('GET', `/v1/distill/${id}`)).json.progress?.done ?? 0) >= 4, 60_000, 10, 'first chunks');
    expect((await api('POST', `/v1/models/${MODEL}/versions`, { dir: v2Dir, version: '2' })).status).toBe(201);
    const view = await waitFor(
      async () => {
        const v = (await api('GET', `/v1/distill/${id}`)).json;
        if (v.status === 'failed') throw new Error(v.failed_reason);
        return v.status === 'completed' ? v : null;
      },
      170_000,
      50,
      'distillation',
    );
    const rows = (await api('GET', `/v1/distill/${id}/files/arith-train.jsonl`)).text
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    const seen: Record<string, number> = {};
    for (const r of rows) seen[r.teacher.version] = (seen[r.teacher.version] ?? 0) + 1;
    console.log(`distill swap: rows per version ${JSON.stringify(seen)}, dropped ${JSON.stringify(view.result.dropped)}`);
    expect(Object.keys(seen).sort()).toEqual(['1', '2']); // the swap really landed mid-job
    expect(view.result.teacher).toEqual({ name: MODEL, version: '1' });
    expect(view.result.teacherVersions).toEqual(seen);
    const meta = JSON.parse((await api('GET', `/v1/distill/${id}/files/distill.json`)).text);
    expect(meta.teacherVersions).toEqual(seen);
  } finally {
    fs.rmSync(v2Dir, { recursive: true, force: true });
  }
});
