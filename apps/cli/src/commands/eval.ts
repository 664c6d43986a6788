// dllm-farm eval: accuracy and speed of a model on held-out problems of a task family.
import * as path from 'node:path';
import { Engine, decodeFlagHelp, decodeFlagSpec, decodeOptionsFromFlags, type DecodeOptions } from '@dllm/engine';
import { familyNames, problems, verifyResponse } from '@dllm/tasks';
import { parseFlags, asUsageError, helpWithout, UsageError, type CliCommand } from '../command';
import { startProgress } from '../progress';

const HELP = `Usage: dllm-farm eval [--model <dir>] --task <family> [--n N] [--seed S] [options] [--json]

  --model DIR        model directory (default: models/tiny-dllm)
  --task NAME        task family (${familyNames().join(', ')}); problems come from its held-out test split
  --split test|train which split the problems come from (default test); choose training checkpoints on
                     train-split problems of an unused seed (a validation set), never on the test split
  --n N              number of problems (default 50)
  --seed S           problem stream seed (default 0); with --temperature > 0 also the sampling seed
                     base (problem i samples with seed S + i)
  --batch N          requests in flight at once (the engine batches them; default 8)
  --threads N        onnxruntime intra-op threads
  --json             print one JSON object on stdout
  --quiet            no progress on stderr (shown after 1.5 s: a bar on a terminal, a line per 10% otherwise)

${helpWithout(decodeFlagHelp, ['seed'])}`;

function int(name: string, v: string | undefined, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got '${v}'`);
  return n;
}

export interface EvalSummary {
  model: { name: string; version: string };
  task: string;
  n: number;
  correct: number;
  accuracy: number;
  tokens: number;
  forwards: number;
  tpf: number;
  tokens_per_second: number;
  wall_seconds: number;
  options: Partial<DecodeOptions>;
}

/**
 * Runs `n` held-out problems of `task` (test split, stream `seed`) through `engine`, `batch` at a time,
 * and sums exact-match accuracy, tokens, forwards and wall time. `onResult` is called once per
 * finished problem (progress display). `split: 'train'` draws the problems from the training split
 * instead (a validation set for choosing checkpoints, with a seed the training data did not use).
 */
export async function runEval(
  engine: Engine,
  task: string,
  n: number,
  seed: number,
  options: Partial<DecodeOptions>,
  batch: number,
  onResult?: (r: { correct: boolean; tokens: number }) => void,
  split: 'test' | 'train' = 'test',
): Promise<EvalSummary> {
  const items = problems(task, { split, seed, n });
  const t0 = performance.now();
  let next = 0;
  let correct = 0;
  let tokens = 0;
  let forwards = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      const p = items[i];
      const opts = options.temperature ? { ...options, seed: (options.seed ?? seed) + i } : options;
      const r = await engine.generate({ prompt: p.prompt, options: opts });
      const ok = verifyResponse(p, r.text).correct;
      if (ok) correct++;
      tokens += r.usage.completionTokens;
      forwards += r.stats.forwards;
      onResult?.({ correct: ok, tokens: r.usage.completionTokens });
    }
  };
  await Promise.all(Array.from({ length: Math.min(batch, items.length) }, worker));
  const wall = (performance.now() - t0) / 1000;
  return {
    model: { name: engine.model.name, version: engine.model.version },
    task,
    n: items.length,
    correct,
    accuracy: items.length ? correct / items.length : 0,
    tokens,
    forwards,
    tpf: forwards ? tokens / forwards : 0,
    tokens_per_second: wall > 0 ? tokens / wall : 0,
    wall_seconds: wall,
    options,
  };
}

export const command: CliCommand = {
  name: 'eval',
  async run(argv) {
    const values = parseFlags(
      {
        args: argv,
        options: {
          model: { type: 'string' },
          task: { type: 'string' },
          split: { type: 'string' },
          n: { type: 'string' },
          batch: { type: 'string' },
          threads: { type: 'string' },
          json: { type: 'boolean' },
          quiet: { type: 'boolean', short: 'q' },
          help: { type: 'boolean', short: 'h' },
          ...decodeFlagSpec,
        },
      },
      HELP,
    ).values;
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (!values.task) throw new UsageError(`--task is required (${familyNames().join(', ')})`);
    if (!familyNames().includes(values.task)) throw new UsageError(`unknown task '${values.task}' (known: ${familyNames().join(', ')})`);
    const split = values.split ?? 'test';
    if (split !== 'test' && split !== 'train') throw new UsageError(`--split must be 'train' or 'test'`);
    const n = int('n', values.n, 50, 1);
    const seed = int('seed', values.seed, 0, 0);
    const batch = int('batch', values.batch, 8, 1);
    const threads = values.threads === undefined ? undefined : int('threads', values.threads, 1, 1);
    const options: Partial<DecodeOptions> = asUsageError(() => decodeOptionsFromFlags({ ...values, seed: undefined }));
    if (values.seed !== undefined && options.temperature) options.seed = seed;
    const engine = await Engine.create({
      modelDir: path.resolve(values.model ?? 'models/tiny-dllm'),
      intraOpThreads: threads,
      maxBatchSize: Math.max(batch, 1),
    });
    try {
      let done = 0;
      let right = 0;
      const progress = startProgress({
        total: n,
        unit: 'problems',
        label: `eval ${values.task}`,
        enabled: !values.quiet,
        detail: () => (done ? `accuracy so far ${((100 * right) / done).toFixed(1)}%` : ''),
      });
      let s: EvalSummary;
      try {
        s = await runEval(
          engine,
          values.task,
          n,
          seed,
          options,
          batch,
          (r) => {
            done++;
            if (r.correct) right++;
            progress.tick();
          },
          split,
        );
      } finally {
        progress.done();
      }
      if (values.json) console.log(JSON.stringify(s));
      else {
        console.log(`${s.model.name}@${s.model.version} on ${s.task} (${s.n} ${split === 'test' ? 'held-out' : 'train-split'} problems, seed ${seed})`);
        console.log(`  accuracy   ${(s.accuracy * 100).toFixed(1)}% (${s.correct}/${s.n})`);
        console.log(`  tokens     ${s.tokens} in ${s.forwards} forwards: TPF ${s.tpf.toFixed(2)}`);
        console.log(`  speed      ${s.tokens_per_second.toFixed(1)} tokens/s, ${s.wall_seconds.toFixed(2)} s wall`);
      }
      return 0;
    } finally {
      await engine.close();
    }
  },
};
