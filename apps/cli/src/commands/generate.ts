// dllm-farm generate: one prompt through the engine (no Redis), text + stats (+ trajectory).
import * as path from 'node:path';
import { Engine, decodeFlagHelp, decodeFlagSpec, decodeOptionsFromFlags } from '@dllm/engine';
import { parseFlags, asUsageError, UsageError, type CliCommand } from '../command';

const HELP = `Usage: dllm-farm generate [--model <dir>] --prompt <text> [options] [--json] [--trajectory]

  --model DIR        model directory (default: models/tiny-dllm)
  --prompt TEXT      the prompt (\\n escapes are honoured)
  --json             print one JSON object {text, tokenIds, finishReason, usage, stats, model, trajectory?}
  --trajectory       also record and print the decoding trajectory (step map, confidences, log-probs)
  --threads N        onnxruntime intra-op threads (default: onnxruntime's choice)
  --ep cpu|cuda      execution provider (default cpu)

${decodeFlagHelp}`;

export const command: CliCommand = {
  name: 'generate',
  async run(argv) {
    const values = parseFlags({
      args: argv,
      options: {
        model: { type: 'string' },
        prompt: { type: 'string' },
        json: { type: 'boolean' },
        trajectory: { type: 'boolean' },
        threads: { type: 'string' },
        ep: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        ...decodeFlagSpec,
      },
    }).values;
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (values.prompt === undefined) throw new UsageError(`--prompt is required\n\n${HELP}`);
    if (values.ep !== undefined && values.ep !== 'cpu' && values.ep !== 'cuda') throw new UsageError(`--ep must be cpu or cuda, got '${values.ep}'`);
    const threads = values.threads === undefined ? undefined : Number(values.threads);
    if (threads !== undefined && (!Number.isInteger(threads) || threads < 1))
      throw new UsageError(`--threads must be a positive integer, got '${values.threads}'`);
    const options = asUsageError(() => ({ ...decodeOptionsFromFlags(values), trajectory: values.trajectory === true }));
    const modelDir = path.resolve(values.model ?? 'models/tiny-dllm');
    const prompt = values.prompt.replace(/\\n/g, '\n');
    const engine = await Engine.create({ modelDir, intraOpThreads: threads, executionProvider: values.ep as 'cpu' | 'cuda' | undefined });
    try {
      const r = await engine.generate({ prompt, options }, values.json ? {} : { onBlock: (e) => process.stdout.write(e.text) });
      if (values.json) {
        console.log(JSON.stringify(r));
      } else {
        process.stdout.write('\n');
        const s = r.stats;
        console.error(
          `-- ${r.model.name}@${r.model.version} ${options.policy ?? (engine.model.kind === 'autoregressive' ? 'ar' : 'fast-dllm-v2')}: ${r.usage.completionTokens} tokens, ${s.forwards} forwards, TPF ${s.tpf.toFixed(2)}, ${s.wallMs} ms, finish: ${r.finishReason}`,
        );
        if (r.trajectory) console.error(`-- step map: ${r.trajectory.stepMap.join(' ')}`);
      }
      return 0;
    } finally {
      await engine.close();
    }
  },
};
