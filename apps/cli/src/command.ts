import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface CliCommand {
  name: string;
  /**
   * Runs the command; resolves to the process exit code. Throwing prints the message and exits
   * EXIT_USAGE (2) for a UsageError, 1 for anything else.
   */
  run(argv: string[]): Promise<number>;
}

/** Exit status for bad command-line input (a UsageError, an unknown command, no command). */
export const EXIT_USAGE = 2;

/** Thrown for bad command-line input: printed without a stack trace, exit code EXIT_USAGE (2). */
export class UsageError extends Error {}

/** Runs `fn`, turning whatever it throws into a UsageError (bad flags are the user's to fix). */
export function asUsageError<R>(fn: () => R, help?: string): R {
  try {
    return fn();
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new UsageError(help ? `${message}\n\n${help}` : message);
  }
}

/** `node:util` parseArgs whose errors (unknown flag, missing value) are UsageErrors, with `help` appended. */
export function parseFlags<T extends ParseArgsConfig>(config: T, help?: string): ReturnType<typeof parseArgs<T>> {
  return asUsageError(() => parseArgs(config), help);
}

/**
 * `help` without the option lines of `flags` (a line starting with `  --<flag> `), for commands that
 * take a shared option block but give one of its flags their own meaning (eval's --seed).
 */
export function helpWithout(help: string, flags: string[]): string {
  return help
    .split('\n')
    .filter((line) => !flags.some((f) => line.startsWith(`  --${f} `)))
    .join('\n');
}
