import { arith } from './arith';
import { fnv1a } from '@dllm/prng';
import { string } from './string';
import type { Problem, Split, TaskFamily } from './types';

export const families: Readonly<Record<string, TaskFamily>> = Object.freeze({ arith, string });

export function familyNames(): string[] {
  return Object.keys(families);
}

export function getFamily(name: string): TaskFamily {
  const family = Object.prototype.hasOwnProperty.call(families, name) ? families[name] : undefined;
  if (!family) throw new RangeError(`unknown task family '${name}' (known: ${familyNames().join(', ')})`);
  return family;
}

/**
 * Train/test membership is a function of the problem CONTENT (family + prompt), never of the seed:
 * one in ten prompts is a test problem, whatever seed produced it, so no training stream can contain a
 * problem that evaluation uses.
 */
export function splitOf(problem: Pick<Problem, 'family' | 'prompt'>): Split {
  return fnv1a(`${problem.family}\n${problem.prompt}`) % 10 === 0 ? 'test' : 'train';
}

/** Streams of different `seed`s use disjoint problem seeds: stream s covers seeds s*STREAM_SPAN .. s*STREAM_SPAN + STREAM_SPAN-1. */
export const STREAM_SPAN = 1_000_000_000;
const MAX_STREAM = Math.floor(Number.MAX_SAFE_INTEGER / STREAM_SPAN) - 1;

export interface ProblemsOptions {
  split: Split;
  /** Stream seed (non-negative integer); the same (family, split, seed, n) always gives the same list. */
  seed?: number;
  n: number;
  /** Drop problems whose prompt already appeared earlier in the list (default false). */
  unique?: boolean;
}

/** The first `n` problems of `family` in `split`, drawn from the stream `seed`. */
export function* iterateProblems(familyName: string, opts: Omit<ProblemsOptions, 'n'>): Generator<Problem> {
  const family = getFamily(familyName);
  const seed = opts.seed ?? 0;
  if (opts.split !== 'train' && opts.split !== 'test') throw new RangeError(`split must be 'train' or 'test', got '${String(opts.split)}'`);
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > MAX_STREAM) throw new RangeError(`seed must be an integer in [0, ${MAX_STREAM}], got ${seed}`);
  const seen = new Set<string>();
  let misses = 0;
  for (let i = 0; i < STREAM_SPAN; i++) {
    const p = family.generate(seed * STREAM_SPAN + i);
    if (splitOf(p) !== opts.split || (opts.unique && seen.has(p.prompt))) {
      // a finite problem space can run dry under `unique`; fail loudly rather than spin
      if (++misses > 100_000) throw new RangeError(`${familyName}/${opts.split}: ran out of distinct problems`);
      continue;
    }
    misses = 0;
    if (opts.unique) seen.add(p.prompt);
    yield p;
  }
}

export function problems(familyName: string, opts: ProblemsOptions): Problem[] {
  if (!Number.isSafeInteger(opts.n) || opts.n < 0) throw new RangeError(`n must be a non-negative integer, got ${opts.n}`);
  const out: Problem[] = [];
  if (opts.n === 0) {
    getFamily(familyName);
    return out;
  }
  for (const p of iterateProblems(familyName, opts)) {
    out.push(p);
    if (out.length >= opts.n) break;
  }
  return out;
}

/** Verify a response against a problem with its own family's verifier. */
export function verifyResponse(problem: Problem, response: string) {
  return getFamily(problem.family).verify(problem, response);
}
