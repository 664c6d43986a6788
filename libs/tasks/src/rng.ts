// Small deterministic helpers shared by the generators. No Math.random anywhere in the task suite:
// a problem is a pure function of (family, seed), so training, evaluation, demos and RL rewards agree.

/** mulberry32: a tiny 32-bit PRNG, good enough for drawing problems, fully reproducible across platforms. */
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

/** A seeded random source with the few draws the generators need. */
export class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    // Fold the full safe-integer range into 32 bits so that seeds above 2^32 still differ.
    const hi = Math.floor(seed / 4294967296);
    this.next = mulberry32(fnv1a(`${hi}:${seed >>> 0}`));
  }
  float(): number {
    return this.next();
  }
  /** Uniform integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }
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
