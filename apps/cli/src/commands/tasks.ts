// dllm-farm tasks: print problems from the task suite as JSONL (training data, eval sets, demo prompts),
// or the character-level tokenizer.json of the bundled models. The Python trainer consumes both, so the
// TypeScript task suite stays the single source of truth for data and vocabulary.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { buildTokenizerJson, delimiterTokenIds, familyNames, families, iterateProblems, vocabulary, type Split } from '@dllm/tasks';
import { parseFlags, UsageError, type CliCommand } from '../command';
import { startProgress } from '../progress';

const HELP = `Usage:
  dllm-farm tasks --family <name> [--split train|test] [--n N] [--seed S] [--unique] [--jsonl out.jsonl]
      Print N problems as JSONL lines {id, family, split, prompt, solution, answer}.
  dllm-farm tasks tokenizer [--out tokenizer.json]
      Write the character-level tokenizer.json of the bundled models (stdout by default).
  dllm-farm tasks list [--json]
      List the task families.

Options:
  --family   task family (${familyNames().join(', ')})
  --split    train (default) or test; membership is decided by the problem text, so they never overlap
  --n        number of problems (default 10)
  --seed     stream seed, a non-negative integer (default 0); the same options always print the same lines
  --unique   skip prompts already printed (the test split of small families repeats otherwise)
  --jsonl    write to this file instead of stdout
  --quiet    no progress on stderr (shown after 1.5 s: a bar on a terminal, a line per 10% otherwise)`;

function toInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a non-negative integer, got '${value}'`);
  return Number(value);
}

async function write(out: Writable, text: string): Promise<void> {
  if (!out.write(text)) await once(out, 'drain');
}

async function closeOut(out: Writable, isFile: boolean): Promise<void> {
  if (!isFile) return;
  out.end();
  await once(out, 'finish');
}

export const command: CliCommand = {
  name: 'tasks',
  async run(argv) {
    const parsed = parseFlags(
      {
        args: argv,
        allowPositionals: true,
        options: {
          family: { type: 'string' },
          split: { type: 'string' },
          n: { type: 'string' },
          seed: { type: 'string' },
          unique: { type: 'boolean' },
          jsonl: { type: 'string' },
          out: { type: 'string' },
          json: { type: 'boolean' },
          quiet: { type: 'boolean', short: 'q' },
          help: { type: 'boolean', short: 'h' },
        },
      },
      HELP,
    );
    const { values, positionals } = parsed;
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const sub = positionals[0];
    if (positionals.length > 1) throw new UsageError(`unexpected arguments: ${positionals.slice(1).join(' ')}\n\n${HELP}`);

    if (sub === 'tokenizer') {
      const json = buildTokenizerJson();
      if (values.out) {
        const out = createWriteStream(values.out);
        await write(out, json);
        await closeOut(out, true);
        const vocab = vocabulary();
        console.error(`wrote ${values.out}: ${Object.keys(vocab).length} tokens, delimiter ids ${delimiterTokenIds().join(',')}`);
      } else {
        await write(process.stdout, json);
      }
      return 0;
    }
    if (sub === 'list') {
      const list = familyNames().map((name) => ({ name, description: families[name].description }));
      if (values.json) console.log(JSON.stringify({ families: list }));
      else for (const f of list) console.log(`${f.name.padEnd(8)} ${f.description}`);
      return 0;
    }
    if (sub !== undefined) throw new UsageError(`unknown subcommand '${sub}'\n\n${HELP}`);

    if (!values.family) throw new UsageError(`--family is required (one of: ${familyNames().join(', ')})\n\n${HELP}`);
    if (!familyNames().includes(values.family)) throw new UsageError(`unknown family '${values.family}' (known: ${familyNames().join(', ')})`);
    const split = (values.split ?? 'train') as Split;
    if (split !== 'train' && split !== 'test') throw new UsageError(`--split must be 'train' or 'test', got '${values.split}'`);
    const n = toInt('n', values.n, 10);
    const seed = toInt('seed', values.seed, 0);

    const out: Writable = values.jsonl ? createWriteStream(values.jsonl) : process.stdout;
    let count = 0;
    let chunk = '';
    const progress = startProgress({ total: n, unit: 'problems', label: `tasks ${values.family}/${split}`, enabled: !values.quiet });
    try {
      if (n > 0) {
        for (const p of iterateProblems(values.family, { split, seed, unique: values.unique })) {
          chunk += `${JSON.stringify({ id: p.id, family: p.family, split, prompt: p.prompt, solution: p.solution, answer: p.answer })}\n`;
          if (++count % 1000 === 0) {
            await write(out, chunk);
            chunk = '';
            progress.tick(1000);
          }
          if (count >= n) break;
        }
      }
      await write(out, chunk);
      progress.tick(count % 1000);
      await closeOut(out, Boolean(values.jsonl));
    } finally {
      progress.done();
    }
    if (values.jsonl) console.error(`wrote ${count} ${values.family}/${split} problems (seed ${seed}) to ${values.jsonl}`);
    return 0;
  },
};
