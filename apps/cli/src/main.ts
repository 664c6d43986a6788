#!/usr/bin/env node
// dllm-farm command line. Each command is one module in ./commands exporting `command: CliCommand`.
// Commands are loaded on demand so `dllm-farm eval` does not pay for the gateway client and vice versa.
// Exit status: 0 success, 1 failure, 2 bad usage (a UsageError, an unknown command, no command).
import { EXIT_USAGE, UsageError, type CliCommand } from './command';
import { COMMANDS, usage } from './registry';

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  if (!name) {
    console.error(usage());
    return EXIT_USAGE;
  }
  if (!(name in COMMANDS)) {
    console.error(`dllm-farm: unknown command '${name}'.\n\n${usage()}`);
    return EXIT_USAGE;
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
    process.exitCode = err instanceof UsageError ? EXIT_USAGE : 1;
  },
);
