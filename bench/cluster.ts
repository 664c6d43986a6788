// npm run bench:cluster: one run, three numbers, against real processes (gateway + worker) on a
// real Redis and the bundled model:
//   1. queue+gateway overhead per job = client latency - engine wall time (target p50 <= 10 ms)
//   2. gateway submissions/s while the worker is busy (target >= 1,000/s)
//   3. throughput of 16 concurrent single-prompt jobs vs the same 16 one at a time (target >= 3x)
// Flags: --json (one JSON object), --jobs N (overhead samples, default 30), --seconds S (submission
// burst, default 3), --max-tokens N (default 32), --model NAME, --model-dir DIR, --src (run the
// processes from TypeScript sources instead of dist/).
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { GatewayClient } from '@dllm/contracts';
import { problems } from '@dllm/tasks';
import { repoRoot, startCluster, type Cluster } from '../apps/demo/src/cluster';

interface Completion {
  choices: { text: string }[];
  usage: { completion_tokens: number };
  dllm: { wall_ms: number; forwards: number; tpf: number };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function main() {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      jobs: { type: 'string', default: '30' },
      seconds: { type: 'string', default: '3' },
      'max-tokens': { type: 'string', default: '32' },
      model: { type: 'string', default: 'tiny-dllm' },
      'model-dir': { type: 'string' },
      concurrency: { type: 'string', default: '16' },
      src: { type: 'boolean', default: false },
    },
  });
  const log = (m: string) => {
    if (!values.json) console.log(m);
  };
  const root = repoRoot();
  const model = values.model;
  const modelDir = path.resolve(root, values['model-dir'] ?? `models/${model}`);
  const maxTokens = Number(values['max-tokens']);
  const nJobs = Number(values.jobs);
  const burstSeconds = Number(values.seconds);
  const { ensureRedis } = require(path.join(root, 'scripts/redis.js')) as { ensureRedis(o: object): Promise<{ url: string; private: boolean; stop(): void }> };
  const redis = await ensureRedis({ log });
  let cluster: Cluster | undefined;
  try {
    log(`starting gateway + 1 worker (WORKER_CONCURRENCY=${values.concurrency}) on ${path.relative(root, modelDir)} ...`);
    cluster = await startCluster({
      redisUrl: redis.url,
      models: [{ name: model, dir: modelDir }],
      workers: 1,
      mode: values.src ? 'src' : undefined,
      env: { RATE_LIMIT_REQUESTS: '100000000', WORKER_CONCURRENCY: values.concurrency },
    });
    const c = cluster;
    const complete = async (prompt: string): Promise<{ ms: number; r: Completion }> => {
      const t = performance.now();
      const res = await fetch(`${c.gatewayUrl}/v1/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${c.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model, prompt, max_tokens: maxTokens, temperature: 0 }),
      });
      const r = (await res.json()) as Completion;
      if (!res.ok) throw new Error(`completion failed: ${res.status} ${JSON.stringify(r)}`);
      return { ms: performance.now() - t, r };
    };
    const prompts = problems('arith', { split: 'test', seed: 7, n: Math.max(nJobs, 16) }).map((p) => p.prompt);
    for (let i = 0; i < 3; i++) await complete(prompts[i]); // warm-up

    // 1. overhead per job, one job at a time
    const overhead: number[] = [];
    const latency: number[] = [];
    for (let i = 0; i < nJobs; i++) {
      const { ms, r } = await complete(prompts[i]);
      latency.push(ms);
      overhead.push(ms - r.dllm.wall_ms);
    }
    // where the overhead goes, for a few native jobs (timestamps from BullMQ, engine time from the result)
    const client0 = new GatewayClient({ baseUrl: c.gatewayUrl, apiKey: c.apiKey });
    const parts = { enqueue: [] as number[], queueWait: [] as number[], workerNonEngine: [] as number[], returnPath: [] as number[] };
    for (let i = 0; i < Math.min(10, nJobs); i++) {
      const t0 = Date.now();
      const { id } = await client0.createJob({ model, prompt: prompts[i], options: { maxNewTokens: maxTokens, temperature: 0 } });
      const t1 = Date.now();
      const ev = await fetch(`${c.gatewayUrl}/v1/jobs/${id}/events`, { headers: { authorization: `Bearer ${c.apiKey}` } });
      await ev.text(); // ends after the completed event
      const t2 = Date.now();
      const v = (await client0.getJob(id)) as {
        timings: { enqueued_ms: number; started_ms: number; finished_ms: number };
        result: { stats: { wallMs: number } };
      };
      parts.enqueue.push(t1 - t0);
      parts.queueWait.push(v.timings.started_ms - v.timings.enqueued_ms);
      parts.workerNonEngine.push(v.timings.finished_ms - v.timings.started_ms - v.result.stats.wallMs);
      parts.returnPath.push(t2 - v.timings.finished_ms);
    }
    log(
      `  breakdown p50 (ms): POST /v1/jobs ${pct(parts.enqueue, 50)}, queue wait ${pct(parts.queueWait, 50)}, worker outside engine ${pct(parts.workerNonEngine, 50)}, finish -> client ${pct(parts.returnPath, 50)}`,
    );
    log(
      `overhead per job: p50 ${pct(overhead, 50).toFixed(2)} ms, p90 ${pct(overhead, 90).toFixed(2)} ms (latency p50 ${pct(latency, 50).toFixed(1)} ms, ${nJobs} jobs)`,
    );

    // 3. 16 single-prompt jobs: one at a time vs all at once (dynamic batching in the engine)
    const sixteen = prompts.slice(0, 16);
    let t = performance.now();
    let seqTokens = 0;
    for (const p of sixteen) seqTokens += (await complete(p)).r.usage.completion_tokens;
    const seqMs = performance.now() - t;
    t = performance.now();
    const conc = await Promise.all(sixteen.map((p) => complete(p)));
    const concMs = performance.now() - t;
    const concTokens = conc.reduce((a, x) => a + x.r.usage.completion_tokens, 0);
    const speedup = seqMs / concMs;
    log(
      `16 jobs: one at a time ${(seqMs / 1000).toFixed(2)} s (${((seqTokens * 1000) / seqMs).toFixed(1)} tok/s), concurrent ${(concMs / 1000).toFixed(2)} s (${((concTokens * 1000) / concMs).toFixed(1)} tok/s): ${speedup.toFixed(2)}x`,
    );

    // 2. submissions/s while the worker is busy (it is working through a backlog)
    const client = new GatewayClient({ baseUrl: c.gatewayUrl, apiKey: c.apiKey });
    for (const p of prompts.slice(0, 32)) await client.createJob({ model, prompt: p, options: { maxNewTokens: 256 } });
    let accepted = 0;
    let rejected = 0;
    const deadline = performance.now() + burstSeconds * 1000;
    t = performance.now();
    await Promise.all(
      Array.from({ length: 64 }, async (_, k) => {
        let i = k;
        while (performance.now() < deadline) {
          const res = await fetch(`${c.gatewayUrl}/v1/jobs`, {
            method: 'POST',
            headers: { authorization: `Bearer ${c.apiKey}`, 'content-type': 'application/json' },
            body: JSON.stringify({ model, prompt: prompts[i++ % prompts.length], options: { maxNewTokens: 8 } }),
          });
          await res.arrayBuffer();
          if (res.status === 202) accepted++;
          else rejected++;
        }
      }),
    );
    const burstMs = performance.now() - t;
    const subsPerSec = (accepted * 1000) / burstMs;
    log(`gateway submissions: ${subsPerSec.toFixed(0)}/s (${accepted} accepted, ${rejected} rejected in ${(burstMs / 1000).toFixed(1)} s, worker busy)`);

    const result = {
      overhead_ms: {
        p50: pct(overhead, 50),
        p90: pct(overhead, 90),
        jobs: nJobs,
        latency_p50_ms: pct(latency, 50),
        target_p50: 10,
        breakdown_p50: {
          enqueue: pct(parts.enqueue, 50),
          queue_wait: pct(parts.queueWait, 50),
          worker_outside_engine: pct(parts.workerNonEngine, 50),
          finish_to_client: pct(parts.returnPath, 50),
        },
      },
      submissions_per_s: { value: subsPerSec, accepted, rejected, seconds: burstMs / 1000, target: 1000 },
      batching: { sequential_s: seqMs / 1000, concurrent_s: concMs / 1000, speedup, target: 3, max_tokens: maxTokens },
      model,
    };
    if (values.json) console.log(JSON.stringify(result));
    else {
      const ok = (b: boolean) => (b ? 'meets target' : 'BELOW TARGET');
      console.log('\nsummary');
      console.log(`  overhead p50      ${result.overhead_ms.p50.toFixed(2)} ms   (target <= 10 ms: ${ok(result.overhead_ms.p50 <= 10)})`);
      console.log(`  submissions/s     ${subsPerSec.toFixed(0)}      (target >= 1000: ${ok(subsPerSec >= 1000)})`);
      console.log(`  batching speedup  ${speedup.toFixed(2)}x     (target >= 3x: ${ok(speedup >= 3)})`);
    }
  } finally {
    await cluster?.stop();
    redis.stop();
  }
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    console.error(`bench:cluster: ${e.message}`);
    process.exit(1);
  },
);
