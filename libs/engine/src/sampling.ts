// Turning one row of logits into a committed token. Pure functions of (logits, params, rng):
// batch-safe by construction (each row is handled on its own, with its own rng).
import type { Sfc32 as Rng } from '@dllm/prng';

export interface SamplingParams {
  /** 0 = greedy. */
  temperature: number;
  /** 0 = off. */
  topK: number;
  /** 1 = off. */
  topP: number;
}

/** The outcome of drawing one position. */
export interface Draw {
  token: number;
  /** Probability of `token` under the distribution it was drawn from (the confidence the threshold rules use). */
  prob: number;
  /** Natural log of `prob`. */
  logprob: number;
  /** Entropy (nats) of that distribution. */
  entropy: number;
}

/**
 * Draws a token from `logits[offset .. offset + vocab)`.
 * - temperature 0 (greedy): argmax (lowest id on ties); the distribution is softmax(logits), top-k/top-p are ignored.
 * - temperature > 0: softmax(logits / T), then top-k, then top-p (smallest set with mass >= topP), renormalised; one rng draw.
 * `banned` token ids (e.g. the MASK token) get probability 0.
 */
export function drawToken(logits: Float32Array, offset: number, vocab: number, params: SamplingParams, rng: Rng | null, banned: readonly number[] = []): Draw {
  const probs = new Float64Array(vocab);
  const greedy = params.temperature === 0;
  const invT = greedy ? 1 : 1 / params.temperature;
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) {
    const v = logits[offset + i];
    if (Number.isNaN(v)) throw new RangeError(`logits contain NaN at vocab index ${i}`);
    probs[i] = v * invT;
  }
  for (const b of banned) if (b >= 0 && b < vocab) probs[b] = -Infinity;
  for (let i = 0; i < vocab; i++) if (probs[i] > max) max = probs[i];
  if (max === -Infinity) throw new RangeError('every token is banned or has -inf logit');
  let sum = 0;
  for (let i = 0; i < vocab; i++) {
    const e = Math.exp(probs[i] - max);
    probs[i] = e;
    sum += e;
  }
  for (let i = 0; i < vocab; i++) probs[i] /= sum;

  if (greedy) {
    let best = 0;
    for (let i = 1; i < vocab; i++) if (probs[i] > probs[best]) best = i;
    const p = probs[best];
    return { token: best, prob: p, logprob: Math.log(p), entropy: entropyOf(probs) };
  }
  if (!rng) throw new Error('sampling with temperature > 0 needs an rng');

  // Candidate set after top-k and top-p, in descending probability (ties: lower id first).
  let order: number[] | null = null;
  if ((params.topK > 0 && params.topK < vocab) || params.topP < 1) {
    order = Array.from({ length: vocab }, (_, i) => i).filter((i) => probs[i] > 0);
    order.sort((x, y) => probs[y] - probs[x] || x - y);
    if (params.topK > 0 && params.topK < order.length) order.length = params.topK;
    if (params.topP < 1) {
      let mass = 0;
      let keep = 0;
      while (keep < order.length) {
        mass += probs[order[keep]];
        keep++;
        if (mass >= params.topP) break;
      }
      order.length = keep;
    }
    const kept = new Float64Array(vocab);
    let ksum = 0;
    for (const i of order) ksum += probs[i];
    for (const i of order) kept[i] = probs[i] / ksum;
    probs.set(kept);
  }
  const u = rng.next();
  let acc = 0;
  let token = -1;
  const ids = order ?? null;
  if (ids) {
    for (const i of ids) {
      acc += probs[i];
      if (u < acc) {
        token = i;
        break;
      }
    }
    if (token < 0) token = ids[ids.length - 1];
  } else {
    let last = 0;
    for (let i = 0; i < vocab; i++) {
      if (probs[i] <= 0) continue;
      last = i;
      acc += probs[i];
      if (u < acc) {
        token = i;
        break;
      }
    }
    if (token < 0) token = last;
  }
  const p = probs[token];
  return { token, prob: p, logprob: Math.log(p), entropy: entropyOf(probs) };
}

/** Per-position statistics of softmax(logits) at temperature 1 with some ids banned (format v2 graph outputs). */
export interface LogitStatistics {
  /** Most likely token (lowest id on ties). */
  argmax: number;
  /** Its probability. */
  maxProb: number;
  /** log sum_v exp(logit_v) over the non-banned ids. */
  logSumExp: number;
  /** Entropy (nats). */
  entropy: number;
}

/**
 * The JS reference of the statistics a format-v2 graph computes in ORT (libs/model logit-head.ts):
 * float64 softmax of `logits[offset .. offset + vocab)` with `banned` ids at probability 0.
 * Its argmax / prob / entropy equal `drawToken`'s greedy draw.
 */
export function logitStatistics(logits: ArrayLike<number>, offset: number, vocab: number, banned: readonly number[] = []): LogitStatistics {
  const ban = new Set(banned);
  let max = -Infinity;
  let argmax = -1;
  for (let i = 0; i < vocab; i++) {
    const v = logits[offset + i];
    if (Number.isNaN(v)) throw new RangeError(`logits contain NaN at vocab index ${i}`);
    if (!ban.has(i) && v > max) ((max = v), (argmax = i));
  }
  if (argmax < 0) throw new RangeError('every token is banned or has -inf logit');
  let sum = 0;
  for (let i = 0; i < vocab; i++) if (!ban.has(i)) sum += Math.exp(logits[offset + i] - max);
  const lse = max + Math.log(sum);
  let h = 0;
  for (let i = 0; i < vocab; i++) {
    if (ban.has(i)) continue;
    const lp = logits[offset + i] - lse;
    const p = Math.exp(lp);
    if (p > 0) h -= p * lp;
  }
  return { argmax, maxProb: Math.exp(max - lse), logSumExp: lse, entropy: h };
}

/**
 * The greedy draw from a position's statistics (graph outputs), without its logits:
 * the same token, probability and entropy `drawToken` gives at temperature 0 (up to float32 rounding).
 */
export function greedyDraw(argmax: number, maxProb: number, entropy: number): Draw {
  if (Number.isNaN(maxProb) || Number.isNaN(entropy)) throw new RangeError('logits contain NaN (the graph returned NaN statistics)');
  return { token: argmax, prob: maxProb, logprob: Math.log(maxProb), entropy };
}

export function entropyOf(probs: Float64Array): number {
  let h = 0;
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i];
    if (p > 0) h -= p * Math.log(p);
  }
  return h;
}
