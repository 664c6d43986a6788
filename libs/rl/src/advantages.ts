// LightningRL rewards and advantages (docs/RL.md has the formulas with a worked example).
//
// Per group (the G samples of one prompt), decoupled normalization of each reward component:
//   accuracy a_i in {0,1}: z-score inside the group (population std, divide by G), or fixed +1/-1
//   TPF t_i = length / forwards: z-score inside the group (default), min-max to [0,1], or coefficient * t_i
//   r_i = A(a)_i + T(t)_i
// A component whose values are all equal in the group is 0 (min-max: 0.5), never NaN.
// Filters per group: all wrong -> dropped ('all_wrong'); max(t) - min(t) < 0.01 -> dropped
// ('tpf_range_below_0.01'); all-correct groups are kept (their signal is TPF only).
// Batch: over all kept samples, advantage_i = (r_i - mean) / max(std, 1e-8) with the SAMPLE std (N-1).
import { z } from 'zod';

export const rewardConfigSchema = z.strictObject({
  /** How accuracy enters the reward: z-score inside the group, or +1 correct / -1 wrong. */
  accuracy: z.enum(['zscore', 'sign']).default('zscore'),
  /** How TPF enters the reward: z-score inside the group, min-max to [0,1] inside the group, or tpfCoefficient * TPF. */
  tpf: z.enum(['zscore', 'minmax', 'raw', 'off']).default('zscore'),
  /** Multiplier of the TPF component in every mode (raw: the reference's coefficient). */
  tpfCoefficient: z.number().min(0).max(100).default(1),
  /** Drop groups where every sample is wrong. */
  dropAllWrong: z.boolean().default(true),
  /** Drop groups whose raw TPF range (max - min) is below this; 0 disables. */
  minTpfRange: z.number().min(0).max(1000).default(0.01),
});
export type RewardConfig = z.infer<typeof rewardConfigSchema>;
export type RewardConfigInput = z.input<typeof rewardConfigSchema>;

export const DEFAULT_REWARD_CONFIG: RewardConfig = rewardConfigSchema.parse({});

/** Reasons a group (and all its samples) is left out of the training batch. */
export type FilterReason = 'all_wrong' | 'tpf_range_below_0.01' | 'tpf_range_below_min' | 'incomplete' | 'batch_full' | 'stale';

export const ADV_STD_FLOOR = 1e-8;

function allEqual(xs: readonly number[]): boolean {
  for (let i = 1; i < xs.length; i++) if (xs[i] !== xs[0]) return false;
  return true;
}

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Population std (divide by n). */
export function populationStd(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return Math.sqrt(s / xs.length);
}

/** Sample std (divide by n - 1); 0 for fewer than two values. */
export function sampleStd(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return Math.sqrt(s / (xs.length - 1));
}

function checkFinite(xs: readonly number[], what: string): void {
  for (const x of xs) if (!Number.isFinite(x)) throw new RangeError(`${what} must be finite numbers, got ${x}`);
}

/** z-score with the population std; all-equal (zero variance) gives 0 for every element. */
export function groupZScore(xs: readonly number[]): number[] {
  checkFinite(xs, 'z-score input');
  if (xs.length === 0) return [];
  if (allEqual(xs)) return xs.map(() => 0);
  const m = mean(xs);
  const sd = populationStd(xs);
  if (!(sd > 0)) return xs.map(() => 0);
  return xs.map((x) => (x - m) / sd);
}

/** Min-max to [0,1]; all-equal gives 0.5. */
export function minMax(xs: readonly number[]): number[] {
  checkFinite(xs, 'min-max input');
  if (xs.length === 0) return [];
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  if (hi === lo) return xs.map(() => 0.5);
  return xs.map((x) => (x - lo) / (hi - lo));
}

/** One sample as the reward needs it. */
export interface SampleOutcome {
  correct: boolean;
  /** Tokens per forward of this response (0 when it ran no forward). */
  tpf: number;
}

export interface RewardComponents {
  /** 1 correct / 0 wrong (truncated responses are wrong). */
  accuracyRaw: number;
  tpfRaw: number;
  /** Normalized accuracy term. */
  accuracy: number;
  /** Normalized (or scaled) TPF term. */
  tpf: number;
  /** accuracy + tpf. */
  total: number;
}

export interface GroupReward {
  rewards: RewardComponents[];
  /** Why the group is dropped from the batch, or null when it is kept. */
  filtered: FilterReason | null;
  tpfRange: number;
  correct: number;
}

/** Rewards of one group (G >= 1 samples) and its filter verdict. */
export function groupRewards(samples: readonly SampleOutcome[], config: RewardConfig = DEFAULT_REWARD_CONFIG): GroupReward {
  if (samples.length === 0) throw new RangeError('a group needs at least one sample');
  const acc: number[] = samples.map((s) => (s.correct ? 1 : 0));
  const tpf = samples.map((s) => s.tpf);
  checkFinite(tpf, 'TPF values');
  for (const t of tpf) if (t < 0) throw new RangeError(`TPF must be >= 0, got ${t}`);
  const accTerm = config.accuracy === 'sign' ? acc.map((a) => (a ? 1 : -1)) : groupZScore(acc);
  let tpfTerm: number[];
  switch (config.tpf) {
    case 'zscore':
      tpfTerm = groupZScore(tpf).map((x) => config.tpfCoefficient * x);
      break;
    case 'minmax':
      tpfTerm = minMax(tpf).map((x) => config.tpfCoefficient * x);
      break;
    case 'raw':
      tpfTerm = tpf.map((x) => config.tpfCoefficient * x);
      break;
    case 'off':
      tpfTerm = tpf.map(() => 0);
      break;
  }
  const rewards = samples.map((_, i) => ({ accuracyRaw: acc[i], tpfRaw: tpf[i], accuracy: accTerm[i], tpf: tpfTerm[i], total: accTerm[i] + tpfTerm[i] }));
  let correct = 0;
  for (const a of acc) correct += a;
  const tpfRange = Math.max(...tpf) - Math.min(...tpf);
  let filtered: FilterReason | null = null;
  if (config.dropAllWrong && correct === 0) filtered = 'all_wrong';
  else if (config.minTpfRange > 0 && tpfRange < config.minTpfRange) filtered = config.minTpfRange === 0.01 ? 'tpf_range_below_0.01' : 'tpf_range_below_min';
  return { rewards, filtered, tpfRange, correct };
}

/**
 * Batch advantages over the kept rewards: (r - mean) / max(sampleStd, 1e-8). All-equal rewards
 * (including a single sample) give 0 for every sample.
 */
export function batchAdvantages(rewards: readonly number[]): { advantages: number[]; mean: number; std: number } {
  checkFinite(rewards, 'rewards');
  if (rewards.length === 0) return { advantages: [], mean: 0, std: 0 };
  const m = mean(rewards);
  const sd = sampleStd(rewards);
  if (allEqual(rewards)) return { advantages: rewards.map(() => 0), mean: m, std: 0 };
  const denom = Math.max(sd, ADV_STD_FLOOR);
  return { advantages: rewards.map((r) => (r - m) / denom), mean: m, std: sd };
}

export interface GroupInput<S extends SampleOutcome = SampleOutcome> {
  groupId: string;
  samples: readonly S[];
  /** A group with a failed/aborted sample is not trained on: reason 'incomplete'. */
  incomplete?: boolean;
  /** Set by the caller (staleness bound, batch already full): overrides the reward filters. */
  forcedFilter?: FilterReason;
}

export interface ScoredSample {
  reward: RewardComponents;
  /** Batch advantage; null when the sample's group is filtered out. */
  advantage: number | null;
  kept: boolean;
  filterReason: FilterReason | null;
}

export interface ScoredGroup {
  groupId: string;
  kept: boolean;
  filterReason: FilterReason | null;
  correct: number;
  size: number;
  tpfRange: number;
  samples: ScoredSample[];
}

export interface ScoredBatch {
  groups: ScoredGroup[];
  /** Mean and sample std of the kept rewards. */
  rewardMean: number;
  rewardStd: number;
  keptGroups: number;
  keptSamples: number;
  filtered: Partial<Record<FilterReason, number>>;
}

/** Group rewards -> filters -> batch advantages over every kept sample, in group order. */
export function scoreBatch(groups: readonly GroupInput[], config: RewardConfig = DEFAULT_REWARD_CONFIG): ScoredBatch {
  const seen = new Set<string>();
  const perGroup = groups.map((g) => {
    if (seen.has(g.groupId)) throw new RangeError(`duplicate group id '${g.groupId}'`);
    seen.add(g.groupId);
    const r = groupRewards(g.samples, config);
    const filterReason: FilterReason | null = g.forcedFilter ?? (g.incomplete ? 'incomplete' : r.filtered);
    return { g, r, filterReason };
  });
  const keptRewards: number[] = [];
  for (const { r, filterReason } of perGroup) if (filterReason === null) for (const x of r.rewards) keptRewards.push(x.total);
  const adv = batchAdvantages(keptRewards);
  let k = 0;
  const filtered: Partial<Record<FilterReason, number>> = {};
  const out: ScoredGroup[] = perGroup.map(({ g, r, filterReason }) => {
    const kept = filterReason === null;
    if (!kept) filtered[filterReason!] = (filtered[filterReason!] ?? 0) + 1;
    return {
      groupId: g.groupId,
      kept,
      filterReason,
      correct: r.correct,
      size: g.samples.length,
      tpfRange: r.tpfRange,
      samples: r.rewards.map((reward) => ({ reward, advantage: kept ? adv.advantages[k++] : null, kept, filterReason })),
    };
  });
  return {
    groups: out,
    rewardMean: adv.mean,
    rewardStd: adv.std,
    keptGroups: out.filter((g) => g.kept).length,
    keptSamples: keptRewards.length,
    filtered,
  };
}
