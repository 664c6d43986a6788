// The commands of dllm-farm, each one module in ./commands exporting `command: CliCommand`.
// Kept apart from main.ts (which runs on import) so tests can walk every command.

/** Command name -> one-line summary (the top-level usage text). */
export const COMMANDS: Record<string, string> = {
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

/** The top-level usage text. */
export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, summary]) => `  ${name.padEnd(width)}  ${summary}`);
  return `Usage: dllm-farm <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun 'dllm-farm <command> --help' for a command's options.\n\nExit status: 0 success, 1 failure, 2 bad usage (unknown command or flag, missing or invalid argument).`;
}
