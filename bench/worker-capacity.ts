// How many job forward passes one worker clears per second: the unit of the KEDA trigger on
// dllm_pending_forward_passes (docs/DEPLOY.md "Scaling numbers"). Runs the real engine (onnxruntime,
// model directory) with C requests in flight, like a worker with WORKER_CONCURRENCY=C, and reports
//   job forwards/s   = sum over requests of their forwards / wall time (what the gauge counts)
//   batched forwards/s, mean rows per batched forward, tokens/s
// and the ScaledObject threshold for a target backlog time: threshold = job forwards/s * seconds.
//   node -r ./test/gateway.register.js bench/worker-capacity.ts --model models/tiny-dllm [--concurrency 16] [--requests 64] [--max-new 64] [--threads 2] [--target-seconds 30] [--json]
import { parseArgs } from 'node:util';
import { Engine } from '@dllm/engine';

async function main() {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'models/tiny-dllm' },
      concurrency: { type: 'string', default: '16' },
      requests: { type: 'string', default: '64' },
      'max-new': { type: 'string', default: '64' },
      threads: { type: 'string', default: '2' },
      'target-seconds': { type: 'string', default: '30' },
      json: { type: 'boolean', default: false },
    },
  });
  const concurrency = Number(values.concurrency);
  const total = Number(values.requests);
  const maxNewTokens = Number(values['max-new']);
  const target = Number(values['target-seconds']);
  const engine = await Engine.create({ modelDir: values.model!, intraOpThreads: Number(values.threads), maxBatchSize: concurrency });
  try {
    // warm-up (session init, first allocations)
    await engine.generate({ prompt: 'Q: 1+1=?\nA:', options: { maxNewTokens: 8 } });
    const before = engine.stats();
    let next = 0;
    let jobForwards = 0;
    let tokens = 0;
    const t0 = performance.now();
    const lane = async () => {
      while (next < total) {
        const i = next++;
        const r = await engine.generate({ prompt: `Q: ${100 + i}+${23 * i}=?\nA:`, options: { maxNewTokens, seed: i } });
        jobForwards += r.stats.forwards;
        tokens += r.usage.completionTokens;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
    const wall = (performance.now() - t0) / 1000;
    const after = engine.stats();
    const batched = after.forwards - before.forwards;
    const rows = after.rows - before.rows;
    const out = {
      model: values.model,
      concurrency,
      requests: total,
      maxNewTokens,
      intraOpThreads: Number(values.threads),
      wallSeconds: +wall.toFixed(2),
      jobForwardsPerSecond: +(jobForwards / wall).toFixed(1),
      batchedForwardsPerSecond: +(batched / wall).toFixed(1),
      meanRowsPerForward: batched ? +(rows / batched).toFixed(2) : 0,
      tokensPerSecond: +(tokens / wall).toFixed(1),
      forwardsPerJob: +(jobForwards / total).toFixed(1),
      targetSeconds: target,
      suggestedThreshold: Math.round((jobForwards / wall) * target),
    };
    if (values.json) console.log(JSON.stringify(out));
    else {
      console.log(
        `${out.model}: ${concurrency} in flight, ${total} requests of <= ${maxNewTokens} tokens, ${out.intraOpThreads} threads, ${out.wallSeconds} s`,
      );
      console.log(`  job forwards/s      ${out.jobForwardsPerSecond}   (forwards per job ${out.forwardsPerJob})`);
      console.log(`  batched forwards/s  ${out.batchedForwardsPerSecond}   (mean rows per forward ${out.meanRowsPerForward})`);
      console.log(`  tokens/s            ${out.tokensPerSecond}`);
      console.log(`  KEDA threshold for a ${target} s backlog per worker: ${out.suggestedThreshold}`);
    }
  } finally {
    await engine.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
