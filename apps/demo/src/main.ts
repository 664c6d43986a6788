// npm run demo: the whole path on one machine. Finds or starts a Redis, starts a gateway and a
// worker on the bundled model, submits a batch of held-out task-suite prompts through the CLI's
// submit code path with a live progress bar, verifies the answers, prints accuracy, TPF, tokens/s
// and where the results are, then stops everything it started.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GatewayClient, type BatchOutputLine } from '@dllm/contracts';
import { problems, verifyResponse, type Problem } from '@dllm/tasks';
import { progressBar, submitBatch, table } from '../../cli/src/commands/submit';
import { repoRoot, startCluster, tail, type Cluster } from './cluster';

interface RedisHandle {
  url: string;
  private: boolean;
  stop(): void;
}

const N_PER_FAMILY = Number(process.env.DEMO_PROBLEMS_PER_FAMILY ?? 16);
const MODEL = process.env.DEMO_MODEL ?? 'tiny-dllm';

async function main(): Promise<number> {
  const root = repoRoot();
  const modelDir = path.resolve(root, process.env.DEMO_MODEL_DIR ?? `models/${MODEL}`);
  if (!fs.existsSync(path.join(modelDir, 'dllm.json'))) {
    console.error(`demo: no model at ${modelDir} (expected dllm.json there). The bundled models live in models/.`);
    return 1;
  }
  const { ensureRedis } = require(path.join(root, 'scripts/redis.js')) as { ensureRedis(o: { log(m: string): void }): Promise<RedisHandle> };
  let redis: RedisHandle;
  try {
    redis = await ensureRedis({ log: (m) => console.log(`redis: ${m}`) });
  } catch (e) {
    console.error((e as Error).message);
    return 1;
  }
  console.log(`redis: ${redis.url}${redis.private ? ' (private, stopped at exit)' : ''}`);
  const outDir = path.join(root, 'var/demo', new Date().toISOString().replace(/[:.]/g, '-'));
  fs.mkdirSync(outDir, { recursive: true });
  let cluster: Cluster | undefined;
  const cleanup = async () => {
    await cluster?.stop().catch(() => {});
    redis.stop();
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    console.log(`starting a gateway and a worker on ${path.relative(root, modelDir)} ...`);
    const t0 = Date.now();
    cluster = await startCluster({
      redisUrl: redis.url,
      models: [{ name: MODEL, dir: modelDir }],
      workers: 1,
      logDir: path.join(outDir, 'logs'),
      storageDir: path.join(outDir, 'storage'),
      env: { RATE_LIMIT_REQUESTS: '100000' },
    });
    console.log(`gateway ${cluster.gatewayUrl} and worker ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (logs: ${path.relative(root, cluster.logDir)})`);

    // Held-out prompts from every task family.
    const probs: Problem[] = [];
    for (const family of ['arith', 'string']) probs.push(...problems(family, { split: 'test', seed: 2026, n: N_PER_FAMILY, unique: true }));
    const maxTokens = Math.min(256, Math.max(...probs.map((p) => p.solution.length)) + 16);
    const input = path.join(outDir, 'input.jsonl');
    fs.writeFileSync(
      input,
      probs
        .map((p) =>
          JSON.stringify({
            custom_id: p.id,
            method: 'POST',
            url: '/v1/completions',
            body: { model: MODEL, prompt: p.prompt, max_tokens: maxTokens, temperature: 0, seed: 0 },
          }),
        )
        .join('\n') + '\n',
    );
    console.log(`submitting ${probs.length} held-out problems (${path.relative(root, input)}) ...`);
    const client = new GatewayClient({ baseUrl: cluster.gatewayUrl, apiKey: cluster.apiKey });
    const started = Date.now();
    const tty = process.stdout.isTTY;
    let lastDone = -1;
    const outcome = await submitBatch(client, {
      file: input,
      endpoint: '/v1/completions',
      window: '24h',
      wait: true,
      outDir,
      pollMs: 200,
      onProgress: (b) => {
        const done = b.request_counts.completed + b.request_counts.failed;
        if (tty) process.stdout.write(`\r${progressBar(b, started)}\x1b[K`);
        else if (done !== lastDone && (done % 8 === 0 || done === b.request_counts.total)) process.stdout.write(`${progressBar(b, started)}\n`);
        lastDone = done;
      },
    });
    if (tty) process.stdout.write('\n');
    const b = outcome.batch;
    if (b.status !== 'completed' || !outcome.outputPath) {
      console.error(`batch ${b.id} ended ${b.status}; errors: ${outcome.errorPath ?? '-'}\nworker log:\n${tail(cluster.workers[0].log)}`);
      return 1;
    }
    const byId = new Map(probs.map((p) => [p.id, p]));
    let correct = 0;
    let tokens = 0;
    let forwards = 0;
    const perFamily = new Map<string, { n: number; ok: number }>();
    const answers = new Map<string, { text: string; extracted: string | null; correct: boolean }>();
    const lines = fs
      .readFileSync(outcome.outputPath, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as BatchOutputLine);
    for (const l of lines) {
      const p = byId.get(l.custom_id ?? '')!; // output lines always carry the custom_id
      const body = l.response?.body as { choices: { text: string }[]; usage: { completion_tokens: number }; dllm: { forwards: number } };
      const v = verifyResponse(p, body.choices[0].text);
      answers.set(p.id, { text: body.choices[0].text, extracted: v.extracted, correct: v.correct });
      const f = perFamily.get(p.family) ?? { n: 0, ok: 0 };
      f.n++;
      if (v.correct) {
        f.ok++;
        correct++;
      }
      perFamily.set(p.family, f);
      tokens += body.usage.completion_tokens;
      forwards += body.dllm.forwards;
    }
    const seconds = outcome.seconds;
    const tpf = tokens / Math.max(1, forwards);
    const tokensPerSecond = tokens / seconds;

    // One example: the first problem of the batch, right or wrong, as the model answered it.
    const first = probs.find((p) => answers.has(p.id));
    if (first) {
      const a = answers.get(first.id)!;
      console.log(
        `\nexample (${first.id}, the first of the ${lines.length} problems):\n` +
          `  question        ${JSON.stringify(first.prompt)}\n` +
          `  model answer    ${JSON.stringify(a.text.trim())}\n` +
          `  expected        ${JSON.stringify(first.solution.trim())}\n` +
          `  verdict         ${a.correct ? 'correct' : 'wrong'}: final answer ${a.extracted === null ? '(none found)' : JSON.stringify(a.extracted)}, expected ${JSON.stringify(first.answer)}`,
      );
    }
    const interval = wilson(correct, lines.length);
    console.log(
      '\n' +
        table([
          ['batch', `${b.id} (${b.status}, ${b.request_counts.completed}/${b.request_counts.total} answered, ${b.request_counts.failed} failed)`],
          ['accuracy', `${((100 * correct) / lines.length).toFixed(1)}% (${correct}/${lines.length}; 95% interval ${pct(interval[0])}-${pct(interval[1])})`],
          ...[...perFamily].map(([fam, f]): [string, string] => [`  ${fam}`, `${((100 * f.ok) / f.n).toFixed(1)}% (${f.ok}/${f.n})`]),
          ['TPF', `${tpf.toFixed(2)} tokens per forward (${tokens} tokens / ${forwards} forwards)`],
          ['tokens/s', `${tokensPerSecond.toFixed(1)} (${tokens} completion tokens in ${seconds.toFixed(1)} s, batch wall time)`],
          ['results', path.relative(root, outcome.outputPath)],
          ['errors', outcome.errorPath ? path.relative(root, outcome.errorPath) : 'none'],
          ['input', path.relative(root, input)],
          ['logs', path.relative(root, cluster.logDir)],
        ]),
    );
    console.log(`\n${explain(root, MODEL, lines.length, tpf)}`);
    return 0;
  } finally {
    await cleanup();
  }
}

/** Wilson score interval (95%) of a binomial proportion: the spread an accuracy on n problems has. */
function wilson(k: number, n: number, z = 1.96): [number, number] {
  if (n === 0) return [0, 1];
  const p = k / n;
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return [Math.max(0, c - h), Math.min(1, c + h)];
}

const pct = (x: number) => `${(100 * x).toFixed(0)}%`;

interface EngineBenchRow {
  model: string;
  label: string;
  batch: number;
  n: number;
  accuracy: number;
  tpf: number;
  tokensPerSecond: number;
}

/**
 * What the numbers mean, and the engine bench's figures for the same model and decoder
 * (bench/results/engine.json, written by `npm run bench:engine`) when that file measured this model.
 */
function explain(root: string, model: string, n: number, tpf: number): string {
  const out = [
    'what the numbers mean:',
    `  accuracy   exact match of the final answer on ${n} held-out problems (never trained on). Another set of ${n}`,
    '             would score differently by several points: see the 95% interval. The README\'s "Measured" table',
    "             gives the model's accuracy from `dllm-farm eval --n 500` per family.",
    '  TPF        tokens committed per forward pass of the model: 1.00 for one-token-at-a-time (AR) decoding; how',
    '             many tokens block diffusion commits in parallel. It does not depend on the machine.',
    '  tokens/s   completion tokens / wall time of the whole batch as a client sees it: upload, queue, one worker',
    `             decoding the ${n} requests together (WORKER_CONCURRENCY), result files, 200 ms polling. The engine`,
    '             bench and `dllm-farm eval` time the engine alone, in-process, so their tokens/s is higher.',
  ];
  try {
    const bench = JSON.parse(fs.readFileSync(path.join(root, 'bench/results/engine.json'), 'utf8')) as {
      date: string;
      models: { dllm: string };
      rows: EngineBenchRow[];
    };
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'models', model, 'dllm.json'), 'utf8')) as { name: string; version: string };
    if (bench.models.dllm !== `${manifest.name}@${manifest.version}`) return out.join('\n');
    const rows = bench.rows.filter((r) => r.model === manifest.name && r.label === 'fast-dllm-v2 t=0.9');
    if (!rows.length) return out.join('\n');
    out.push(
      `compare: engine bench of ${bench.models.dllm} (bench/results/engine.json, ${bench.date.slice(0, 10)}; same decoder: fast-dllm-v2, threshold 0.9, the model's decode_defaults):`,
    );
    for (const r of rows) {
      out.push(
        `  batch ${r.batch}: ${Math.round(r.tokensPerSecond)} tokens/s, TPF ${r.tpf.toFixed(2)}, accuracy ${(100 * r.accuracy).toFixed(1)}% on ${r.n} problems`,
      );
    }
    out.push(`  TPF here ${tpf.toFixed(2)}: the same decoder commits about as many tokens per forward; the gap in tokens/s is the`);
    out.push('  service around the engine (and the load on this machine).');
  } catch {
    /* no bench results in this checkout: the explanation stands alone */
  }
  return out.join('\n');
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`demo: ${e.message}`);
    process.exit(1);
  },
);
