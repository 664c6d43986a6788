#!/usr/bin/env node
// dllm-farm command line. Each command is one module in ./commands exporting `command: CliCommand`.
// Commands are loaded on demand so `dllm-farm eval` does not pay for the gateway client and vice versa.
import type { CliCommand } from './command';

const COMMANDS: Record<string, string> = {
  convert: 'Convert a Hugging Face Qwen2-style checkpoint (safetensors) into a dllm-farm model directory',
  export: 'Write a model directory out as a Hugging Face checkpoint (safetensors) or a transformers.js folder',
  eval: 'Measure accuracy and speed of a model on a task family',
  generate: 'Generate text for one prompt with the engine (no Redis needed)',
  tasks: 'Print problems from the task suite (training data, eval sets, demo prompts)',
  submit: 'Submit a JSONL file as a batch to a gateway, with live progress',
  status: 'Show the status of a batch or job on a gateway',
  results: 'Download the output of a batch or job from a gateway',
  cancel: 'Cancel a batch or job on a gateway',
  quantize: 'Write a weight-only quantized copy of a model directory',
  'inspect-activations': 'Report activation magnitudes per layer on calibration prompts',
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, summary]) => `  ${name.padEnd(width)}  ${summary}`);
  return `Usage: dllm-farm <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'dllm-farm <command> --help' for a command's options.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 1;
  }
  if (!(name in COMMANDS)) {
    console.error(`dllm-farm: unknown command '${name}'.\n\n${usage()}`);
    return 2;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(`./commands/${name}`) as { command: CliCommand };
  return mod.command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`dllm-farm: ${err instanceof Error ? err.message : String(err)}`);
    if (process.env.DLLM_DEBUG) console.error(err);
    process.exitCode = 1;
  },
);
