import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface CliCommand {
  name: string;
  /** Runs the command; resolves to the process exit code. Throwing prints the message and exits 1. */
  run(argv: string[]): Promise<number>;
}

/** Thrown for bad command-line input: printed without a stack trace, exit code 2. */
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
