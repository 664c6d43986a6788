// Redis memory per job, measured on a real Redis with real BullMQ, to size Redis for a deployment
// (docs/DEPLOY.md "Redis memory"). Adds N generation-shaped jobs under a private prefix, runs them
// with a trivial processor that reports per-block progress and returns a result reference, and sums
// MEMORY USAGE over the prefix's keys at each stage (exact and unaffected by other users of a shared
// Redis). Cleans up its keys at the end.
//   node -r ./test/gateway.register.js bench/redis-sizing.ts [--jobs 2000] [--prompt-chars 400] [--blocks 4] [--result-chars 1000] [--json]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { QueueRegistry } from '@dllm/queue';

// bench/ from the sources, or dist/bench/ from the build: scripts/redis.js is at the repository root.
const root = [path.resolve(__dirname, '..'), path.resolve(__dirname, '..', '..')].find((d) => fs.existsSync(path.join(d, 'scripts/redis.js')))!;
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { ensureRedis } = require(path.join(root, 'scripts/redis.js')) as { ensureRedis: () => Promise<{ url: string; stop(): void }> };

async function keyBytes(redis: Redis, pattern: string): Promise<{ keys: number; bytes: number }> {
  let cursor = '0';
  let keys = 0;
  let bytes = 0;
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (batch.length) {
      const p = redis.pipeline();
      for (const k of batch) p.call('MEMORY', 'USAGE', k, 'SAMPLES', '0');
      for (const [err, v] of (await p.exec()) ?? []) if (!err) bytes += Number(v ?? 0);
      keys += batch.length;
    }
  } while (cursor !== '0');
  return { keys, bytes };
}

async function main() {
  const { values } = parseArgs({
    options: {
      jobs: { type: 'string', default: '2000' },
      'prompt-chars': { type: 'string', default: '400' },
      blocks: { type: 'string', default: '4' },
      'result-chars': { type: 'string', default: '1000' },
      json: { type: 'boolean', default: false },
    },
  });
  const n = Number(values.jobs);
  const promptChars = Number(values['prompt-chars']);
  const blocks = Number(values.blocks);
  const resultChars = Number(values['result-chars']);
  const redisInfo = await ensureRedis();
  const prefix = `sizing-${process.pid}`;
  const connection = { url: redisInfo.url, maxRetriesPerRequest: null } as const;
  const redis = new Redis(redisInfo.url);
  const queueName = 'dllm.generation.tiny-dllm';
  // the queue's owner, as in the gateway (retention is set per job below: the bench sizes its own)
  const queues = new QueueRegistry({ connection: { ...connection }, prefix });
  const queue = queues.get('generation', 'tiny-dllm');
  const prompt = 'Q: '.padEnd(promptChars, '7+8=15; ');
  try {
    const empty = await keyBytes(redis, `${prefix}:*`);
    const jobs = Array.from({ length: n }, (_, i) => ({
      name: 'generate',
      data: {
        owner: 'team-a',
        model: 'tiny-dllm',
        prompt,
        options: { maxNewTokens: 128, threshold: 0.9 },
        stream: false,
        endpoint: 'completions',
        createdAt: Date.now(),
      },
      opts: { priority: i % 2 ? 2 : undefined, removeOnComplete: { count: n, age: 3600 }, removeOnFail: { count: n, age: 604800 } },
    }));
    for (let i = 0; i < jobs.length; i += 500) await queue.addBulk(jobs.slice(i, i + 500));
    const waiting = await keyBytes(redis, `${prefix}:*`);

    const worker = new Worker(
      queueName,
      async (job) => {
        for (let b = 1; b <= blocks; b++) await job.updateProgress({ blocks: b, completionTokens: b * 32, forwards: b * 12, text: 'x'.repeat(32) });
        return {
          resultKey: `dllm:result:${job.id}`,
          bytes: resultChars,
          finishReason: 'stop',
          usage: { promptTokens: 120, completionTokens: blocks * 32 },
          stats: { forwards: blocks * 12, tpf: 2.67, wallMs: 85 },
        };
      },
      { connection: { ...connection }, prefix, concurrency: 50 },
    );
    await new Promise<void>((resolve) => {
      let done = 0;
      worker.on('completed', () => {
        if (++done === n) resolve();
      });
    });
    await worker.close();
    const completed = await keyBytes(redis, `${prefix}:*`);
    const events = await keyBytes(redis, `${prefix}:${queueName}:events`);

    // Stored results (libs/storage Redis store: one string key with TTL per result).
    const result = JSON.stringify({
      text: 'y'.repeat(resultChars),
      finishReason: 'stop',
      usage: { promptTokens: 120, completionTokens: 128 },
      stats: { forwards: 48, tpf: 2.67, wallMs: 85 },
      model: { name: 'tiny-dllm', version: '1.0.0' },
    });
    const p = redis.pipeline();
    for (let i = 0; i < n; i++) p.set(`${prefix}:result:${i}`, result, 'EX', 600);
    await p.exec();
    const results = await keyBytes(redis, `${prefix}:result:*`);

    const out = {
      redis: redisInfo.url.replace(/\/\/[^@]*@/, '//'),
      jobs: n,
      promptChars,
      blocks,
      resultChars,
      bytesPerWaitingJob: Math.round((waiting.bytes - empty.bytes) / n),
      bytesPerCompletedJob: Math.round((completed.bytes - empty.bytes - events.bytes) / n),
      eventsStreamBytes: events.bytes,
      bytesPerStoredResult: Math.round(results.bytes / n),
    };
    if (values.json) console.log(JSON.stringify(out));
    else {
      console.log(`Redis memory per job (${n} jobs, ${promptChars}-char prompts, ${blocks} progress updates, ${resultChars}-char results):`);
      console.log(`  waiting/prioritized job      ${out.bytesPerWaitingJob} B`);
      console.log(`  completed job (kept)         ${out.bytesPerCompletedJob} B`);
      console.log(`  stored result (TTL key)      ${out.bytesPerStoredResult} B`);
      console.log(`  events stream (whole queue)  ${out.eventsStreamBytes} B (capped by BullMQ's maxLenEvents)`);
    }
  } finally {
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queues.close();
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (batch.length) await redis.del(...batch);
    } while (cursor !== '0');
    redis.disconnect();
    redisInfo.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
