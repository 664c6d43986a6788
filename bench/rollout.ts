// npm run bench:rollout: rollout throughput with and without group prefix sharing, in one run.
//
//   npm run bench:rollout -- [--model models/tiny-dllm] [--groups 6] [--g 8] [--shots 4] [--max-new 48]
//       [--threads 1] [--repeat 2] [--temperature 1] [--json FILE]
//
// What it runs: `groups` rollout groups (one held-out arith problem each, behind a `shots`-example
// few-shot prefix so the prompt spans several KV blocks), G samples per group with distinct seeds at
// the given temperature, verified with the task verifier: exactly what a rollout group child does
// (runGroup from @dllm/rl). Groups run one after another; the G samples of a group run together.
// Two engines on the same model differ only in prefixSharing (the KV pool's hash-chain page
// sharing); runs are interleaved (on, off, on, off...) so machine noise hits both alike; the order flips every repeat.
// Prints samples/s, completion tokens/s, prompt tokens prefilled vs served from the shared prefix,
// then one JSON object. Numbers are for this CPU with --threads intra-op threads.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '@dllm/engine';
import { MANIFEST_FILE, buildTinyModel } from '@dllm/model';
import { runGroup, scoreRecords, verifiers } from '@dllm/rl';
import { problems } from '@dllm/tasks';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/tiny-dllm' },
    groups: { type: 'string', default: '6' },
    g: { type: 'string', default: '8' },
    shots: { type: 'string', default: '4' },
    'max-new': { type: 'string', default: '48' },
    threads: { type: 'string', default: '1' },
    repeat: { type: 'string', default: '2' },
    temperature: { type: 'string', default: '1' },
    json: { type: 'string' },
  },
});
const int = (k: keyof typeof values, min: number) => {
  const n = Number(values[k]);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${k} must be an integer >= ${min}, got ${values[k]}`);
  return n;
};

async function main() {
  const nGroups = int('groups', 1);
  const G = int('g', 2);
  const repeat = int('repeat', 1);
  const threads = int('threads', 1);
  const maxNew = int('max-new', 1);
  const temperature = Number(values.temperature);
  let modelDir = path.resolve(values.model!);
  let note = '';
  if (!fs.existsSync(path.join(modelDir, MANIFEST_FILE))) {
    modelDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-rollout-'));
    buildTinyModel(modelDir, {
      seed: 3,
      config: { vocab_size: 128, hidden_size: 64, num_layers: 2 },
      manifest: { name: 'tiny-random', version: '1', block_size: 8 },
    });
    note = `(${values.model} not found: a random-weight tiny model, accuracy is meaningless, speed is not)`;
  }
  const shots = problems('arith', { split: 'train', seed: 1, n: int('shots', 0) })
    .map((p) => `${p.prompt}${p.solution}\n`)
    .join('');
  const items = problems('arith', { split: 'test', seed: 2, n: nGroups });
  const verifier = verifiers.bind('task:arith');

  const engines = {
    shared: await Engine.create({ modelDir, intraOpThreads: threads, prefixSharing: true }),
    unshared: await Engine.create({ modelDir, intraOpThreads: threads, prefixSharing: false }),
  };
  const model = engines.shared.model;
  const totals: Record<
    string,
    { samples: number; tokens: number; prompt: number; hit: number; wallMs: number; correct: number; kept: number; groups: number }
  > = {};
  for (const k of Object.keys(engines)) totals[k] = { samples: 0, tokens: 0, prompt: 0, hit: 0, wallMs: 0, correct: 0, kept: 0, groups: 0 };

  // warm-up: full-size groups on each engine until onnxruntime has seen every batch shape (the first
  // runs of a session are several times slower and would otherwise land on whichever engine goes first)
  for (let w = 0; w < 3; w++) {
    for (const e of Object.values(engines)) {
      await runGroup(e, {
        rolloutId: 'warm',
        groupIndex: w,
        promptId: 'w',
        prompt: shots + items[w % items.length].prompt,
        answer: items[0].answer,
        verifier,
        groupSize: G,
        options: { temperature, maxNewTokens: maxNew },
        baseSeed: 7_000_000 + w * G,
      });
    }
  }

  for (let r = 0; r < repeat; r++) {
    // alternate which engine goes first, so order effects (caches, the other engine's thread) cancel out
    const order = r % 2 === 0 ? Object.entries(engines) : Object.entries(engines).reverse();
    for (const [name, engine] of order) {
      const t = totals[name];
      const t0 = performance.now();
      for (let g = 0; g < items.length; g++) {
        const run = await runGroup(engine, {
          rolloutId: `bench${r}`,
          groupIndex: g,
          promptId: items[g].id,
          prompt: shots + items[g].prompt,
          answer: items[g].answer,
          verifier,
          groupSize: G,
          options: { temperature, maxNewTokens: maxNew },
          baseSeed: 1000 * r + G * g,
        });
        t.samples += run.records.length;
        t.tokens += run.completionTokens;
        t.prompt += run.promptTokens;
        t.hit += run.prefixHitTokens;
        t.correct += run.records.filter((x) => x.correct).length;
        const s = scoreRecords(run.records);
        t.kept += s.groups.filter((x) => x.kept).length;
        t.groups += 1;
      }
      t.wallMs += performance.now() - t0;
    }
  }
  for (const e of Object.values(engines)) await e.close();

  const rows = Object.entries(totals).map(([name, t]) => ({
    prefixSharing: name === 'shared',
    samples: t.samples,
    samplesPerSecond: t.samples / (t.wallMs / 1000),
    completionTokensPerSecond: t.tokens / (t.wallMs / 1000),
    promptTokens: t.prompt,
    prefillTokens: t.prompt - t.hit,
    prefixHitTokens: t.hit,
    prefillSavedFraction: t.prompt ? t.hit / t.prompt : 0,
    accuracy: t.correct / t.samples,
    keptGroupFraction: t.kept / t.groups,
    wallSeconds: t.wallMs / 1000,
  }));
  console.log(`rollout bench: model ${model.name}@${model.version} ${note}`);
  console.log(
    `${nGroups} groups x G=${G} (prompt ~${Math.round(rows[0].promptTokens / rows[0].samples)} tokens, max ${maxNew} new, temperature ${temperature}), x${repeat} interleaved, ${threads} intra-op thread(s)\n`,
  );
  console.log('sharing  samples/s  tokens/s  prefilled  from-cache  saved   acc    kept-groups');
  for (const r of rows) {
    console.log(
      `${(r.prefixSharing ? 'on' : 'off').padEnd(8)} ${r.samplesPerSecond.toFixed(2).padStart(9)} ${r.completionTokensPerSecond.toFixed(1).padStart(9)} ${String(r.prefillTokens).padStart(10)} ${String(r.prefixHitTokens).padStart(11)} ${(100 * r.prefillSavedFraction).toFixed(1).padStart(5)}% ${r.accuracy.toFixed(3).padStart(6)} ${r.keptGroupFraction.toFixed(2).padStart(8)}`,
    );
  }
  const speedup = rows[0].samplesPerSecond / rows[1].samplesPerSecond;
  console.log(`\nsharing on / off: ${speedup.toFixed(2)}x samples/s`);
  const out = {
    bench: 'rollout',
    model: `${model.name}@${model.version}`,
    groups: nGroups,
    groupSize: G,
    maxNewTokens: maxNew,
    temperature,
    threads,
    repeat,
    rows,
    speedup,
  };
  console.log(JSON.stringify(out));
  if (values.json) fs.writeFileSync(values.json, JSON.stringify(out, null, 2));
}

main().catch((e: Error) => {
  console.error(`bench:rollout: ${e.message}`);
  process.exit(1);
});
