// dllm-farm export <model-dir> <out-dir>: the inverse of convert. Writes config.json,
// model.safetensors and tokenizer.json, so training can start from a served model.
import { exportCheckpoint } from '@dllm/quant';
import { parseFlags, UsageError, type CliCommand } from '../command';

const HELP = `Usage:
  dllm-farm export <model-dir> <out-dir> [--json]

Writes a float dllm-farm model directory back out as a Hugging Face Qwen2-style checkpoint
(config.json with the manifest's tokens and block size, model.safetensors, tokenizer.json).
tools/train/train.py takes it as --init; dllm-farm convert turns it back into the same graph.
Quantized models are refused (their float weights are gone).`;

export const command: CliCommand = {
  name: 'export',
  async run(argv) {
    const { values: v, positionals } = parseFlags({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }, HELP);
    if (v.help) {
      process.stdout.write(HELP + '\n');
      return 0;
    }
    if (positionals.length !== 2) throw new UsageError(`expected <model-dir> <out-dir>, got ${positionals.length} argument(s)\n\n${HELP}`);
    const r = exportCheckpoint(positionals[0], positionals[1]);
    process.stdout.write(v.json ? JSON.stringify(r) + '\n' : `wrote ${r.tensors} tensors (${r.parameters.toLocaleString('en-US')} parameters) to ${r.outDir}\n`);
    return 0;
  },
};
