// dllm-farm inspect-activations: per-layer activation magnitudes at every linear layer's input on
// calibration prompts, flagging "massive" outliers (docs/QUANTIZATION.md).
import { familyNames } from '@dllm/tasks';
import { inspectActivations } from '@dllm/quant';
import { parseFlags, UsageError, type CliCommand } from '../command';
import { startActivity } from '../progress';

const HELP = `Usage:
  dllm-farm inspect-activations <model-dir> [--families arith,string] [--n 8] [--seed 1] [--ratio 100] [--json]

Runs calibration texts (prompt + worked answer from the task suite's train split; for block-diffusion
models about half the answer tokens are masked, as during decoding) and prints, for every linear
layer input, max and percentile magnitudes of |x|. A value is a "massive" outlier when it is at
least --ratio times the median |x| of that tensor; the channels holding them are listed.

Options:
  --families  task families to draw calibration text from (${familyNames().join(', ')}; default all)
  --n         texts per family (default 8)
  --seed      calibration stream seed (default 1)
  --ratio     massive-outlier threshold as a multiple of the median (default 100)
  --json      print one JSON object`;

function num(name: string, v: string | undefined, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || n < min) throw new UsageError(`--${name} must be a number >= ${min}, got '${v}'`);
  return n;
}

export const command: CliCommand = {
  name: 'inspect-activations',
  async run(argv) {
    const parsed = parseFlags(
      {
        args: argv,
        allowPositionals: true,
        options: {
          families: { type: 'string' },
          n: { type: 'string' },
          seed: { type: 'string' },
          ratio: { type: 'string' },
          json: { type: 'boolean' },
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
    if (positionals.length !== 1) throw new UsageError(`expected one <model-dir>, got ${positionals.length} argument(s)\n\n${HELP}`);
    const families = values.families ? values.families.split(',').map((s) => s.trim()) : familyNames();
    for (const f of families) if (!familyNames().includes(f)) throw new UsageError(`unknown task family '${f}' (known: ${familyNames().join(', ')})`);
    const massiveRatio = num('ratio', values.ratio, 100, 1);
    const activity = startActivity('inspect-activations');
    let stats: Awaited<ReturnType<typeof inspectActivations>>;
    try {
      stats = await inspectActivations(positionals[0], {
        families,
        perFamily: num('n', values.n, 8),
        seed: num('seed', values.seed, 1, 0),
        massiveRatio,
      });
    } finally {
      activity.done();
    }
    if (values.json) {
      console.log(JSON.stringify({ model: positionals[0], families, massive_ratio: massiveRatio, inputs: stats }));
      return 0;
    }
    const f = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(3));
    const header = ['linear input', 'K', 'p50', 'p99', 'p99.9', 'max', 'max/p50', 'tok%', 'outlier channels'];
    const rows = stats.map((s) => [
      s.label,
      String(s.K),
      f(s.p50),
      f(s.p99),
      f(s.p999),
      f(s.absMax),
      `${f(s.ratio)}${s.massive ? ' !' : ''}`,
      s.massive ? (100 * s.outlierTokenShare).toFixed(0) : '-',
      s.outlierChannels.map((c) => `${c.channel}(${f(c.absMax)})`).join(' ') || '-',
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
    console.log(`${stats[0]?.tokens ?? 0} tokens from ${families.join(', ')}; '!' = massive (>= ${massiveRatio}x median |x|), tok% = tokens holding one`);
    console.log(line(header));
    for (const r of rows) console.log(line(r));
    const massive = stats.filter((s) => s.massive);
    console.log(massive.length ? `massive outliers at: ${massive.map((s) => s.label).join(', ')}` : 'no massive outliers');
    return 0;
  },
};
