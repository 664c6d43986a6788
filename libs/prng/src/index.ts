// The project's seeded pseudo-random generators, in one place (issue 12).
//
// Seeds are a data contract: a task problem, a sampled token, a tiny model's weights and a
// synthetic quantization test matrix are pure functions of their seed, recorded in datasets, job
// payloads and trajectories. So each algorithm here is frozen: never change what a stream yields
// for a seed (prng.spec.ts pins the first outputs of every stream). Add a new generator instead.
//
// This lib depends on nothing, so every other lib may import it.

/**
 * splitmix32 step (Steele, Lea & Flood 2014, 32-bit variant): advances `state.s` by the golden
 * gamma and returns a mixed unsigned 32-bit value. Used to seed {@link Sfc32}.
 */
export function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, PractRand) seeded through
 * splitmix32, with 12 warm-up draws. The engine keeps one per sequence, so the tokens a sequence
 * draws never depend on its batch-mates or on scheduling order.
 */
export class Sfc32 {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** Number of 32-bit draws since construction (recorded for replay/debugging). */
  draws = 0;

  /** seed: any number; only its low 32 bits (`seed >>> 0`) matter. */
  constructor(seed: number) {
    const st = { s: seed >>> 0 };
    this.a = splitmix32(st);
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = 1;
    for (let i = 0; i < 12; i++) this.nextU32();
    this.draws = 0;
  }

  /** The next unsigned 32-bit value. */
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    this.draws++;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits (two 32-bit draws). */
  next(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

/** A fresh 32-bit seed from Math.random, for requests that did not pass one. */
export function randomSeed(): number {
  return Math.floor(Math.random() * 0x100000000) >>> 0;
}

/**
 * mulberry32 (Tommy Ettinger): a tiny 32-bit generator. Returns a function yielding uniform
 * values in [0, 1) with 32 random bits each. `seed >>> 0` is the initial state.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a 32-bit hash of a string's UTF-16 code units; used for split membership and seeding. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * The task suite's seeded source: mulberry32 over the FNV-1a hash of the seed's high and low
 * 32-bit halves, so every safe integer (negative ones and seeds above 2^32 too) gives its own
 * stream. A problem is a pure function of (family, seed). Throws RangeError for a seed that is not
 * a safe integer.
 */
export class ProblemRng {
  private readonly next: () => number;
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    // Fold the full safe-integer range into 32 bits so that seeds above 2^32 still differ.
    const hi = Math.floor(seed / 4294967296);
    this.next = mulberry32(fnv1a(`${hi}:${seed >>> 0}`));
  }
  /** Uniform in [0, 1). */
  float(): number {
    return this.next();
  }
  /** Uniform integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  /** A uniformly chosen element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }
}

/**
 * xorshift32 (Marsaglia 2003, shifts 13/17/5). Returns a function yielding the next unsigned
 * 32-bit state. `state` is the initial state; 0 (a fixed point of xorshift) is replaced by 1.
 */
export function xorshift32(state: number): () => number {
  let s = state >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/**
 * Pseudo-normal values N(0, std^2) by Box-Muller over xorshift32 seeded with `seed` (two draws per
 * value, each mapped to (0, 1) as (u + 0.5) / 2^32, cosine branch only). Used for synthetic weights.
 */
export function normalFloats(count: number, seed: number, std = 1): Float32Array {
  const u32 = xorshift32(seed);
  const next = () => (u32() + 0.5) / 4294967296;
  const w = new Float32Array(count);
  for (let i = 0; i < w.length; i++) w[i] = std * Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
  return w;
}
