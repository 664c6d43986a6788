// Lua scripts kept as .lua files (each documents its KEYS and ARGV at the top), registered once per
// ioredis client with defineCommand: ioredis sends EVALSHA and falls back to EVAL on NOSCRIPT, so a
// script body crosses the wire once per connection, not once per call. The build copies *.lua next
// to the compiled modules (package.json "build").
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Redis } from 'ioredis';

/** A script file and the number of its arguments that are keys (ioredis numberOfKeys). */
export interface LuaScript {
  /** Absolute path of the .lua file. */
  file: string;
  numberOfKeys: number;
}

const sources = new Map<string, string>();
const defined = new WeakMap<Redis, Set<string>>();

/** The text of a .lua file, read once per process. Throws with the path when it is missing. */
export function luaSource(file: string): string {
  let s = sources.get(file);
  if (s === undefined) {
    try {
      s = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new Error(`Lua script ${file} is missing (${(e as Error).message}); the build copies *.lua next to the compiled modules`);
    }
    sources.set(file, s);
  }
  return s;
}

/**
 * Registers `scripts` (command name -> script) on `redis` unless already done for this client, and
 * returns the client typed with those commands: `(...keys, ...args) => Promise<unknown>`.
 */
export function withScripts<N extends string>(
  redis: Redis,
  scripts: Record<N, LuaScript>,
): Redis & Record<N, (...keysAndArgs: (string | number)[]) => Promise<unknown>> {
  let done = defined.get(redis);
  if (!done) defined.set(redis, (done = new Set()));
  for (const [name, s] of Object.entries(scripts) as [N, LuaScript][]) {
    if (done.has(name)) continue;
    redis.defineCommand(name, { numberOfKeys: s.numberOfKeys, lua: luaSource(s.file) });
    // Script commands stay out of ioredis auto-pipelines: an EVALSHA answered NOSCRIPT is resent
    // as EVAL from inside the pipeline, and the pipeline then hands its callers misaligned replies
    // ("results[i] is not iterable", redis/ioredis#1931). A new array: the default one is shared.
    const opts = redis.options as { enableAutoPipelining?: boolean; autoPipeliningIgnoredCommands?: string[] };
    if (opts.enableAutoPipelining) opts.autoPipeliningIgnoredCommands = [...(opts.autoPipeliningIgnoredCommands ?? []), name];
    done.add(name);
  }
  return redis as Redis & Record<N, (...keysAndArgs: (string | number)[]) => Promise<unknown>>;
}

/** `dir/name.lua` as a LuaScript. */
export function luaFile(dir: string, name: string, numberOfKeys: number): LuaScript {
  return { file: path.join(dir, `${name}.lua`), numberOfKeys };
}
