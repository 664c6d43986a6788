// Scoring trajectory records: group -> LightningRL rewards -> filters -> batch advantages, written
// back into the records. The same function serves the rollout parent job and tests.
import { DEFAULT_REWARD_CONFIG, scoreBatch, type FilterReason, type GroupInput, type RewardConfig, type ScoredBatch } from './advantages';
import type { TrajectoryRecord } from './trajectory';

export interface GroupSummary {
  groupId: string;
  groupIndex: number;
  promptId: string;
  size: number;
  correct: number;
  tpfRange: number;
  kept: boolean;
  filterReason: FilterReason | null;
  policyVersions: string[];
}

export interface ScoreOptions {
  config?: RewardConfig;
  /** Groups forced out of the batch before the reward filters (dynamic sampling surplus, staleness). */
  forced?: ReadonlyMap<string, FilterReason>;
}

/**
 * Scores records in place (reward, advantage, kept, filterReason) and returns per-group summaries.
 * Groups keep the order of their first record's groupIndex; samples are ordered by sampleIndex.
 * A group with a failed or aborted sample is 'incomplete'; a group with a stale sample is 'stale'
 * unless the caller forced another reason.
 */
export function scoreRecords(records: TrajectoryRecord[], opts: ScoreOptions = {}): { groups: GroupSummary[]; batch: ScoredBatch } {
  const config = opts.config ?? DEFAULT_REWARD_CONFIG;
  const byGroup = new Map<string, TrajectoryRecord[]>();
  for (const r of records) {
    const list = byGroup.get(r.groupId);
    if (list) list.push(r);
    else byGroup.set(r.groupId, [r]);
  }
  const groups = [...byGroup.values()].sort((a, b) => a[0].groupIndex - b[0].groupIndex);
  for (const g of groups) {
    g.sort((a, b) => a.sampleIndex - b.sampleIndex);
    for (let i = 1; i < g.length; i++)
      if (g[i].sampleIndex === g[i - 1].sampleIndex) throw new RangeError(`group ${g[0].groupId}: duplicate sample index ${g[i].sampleIndex}`);
  }
  const inputs: GroupInput[] = groups.map((g) => {
    const incomplete = g.some((r) => r.status === 'failed' || r.status === 'aborted');
    const stale = g.some((r) => r.stale);
    const forced = opts.forced?.get(g[0].groupId) ?? (stale ? 'stale' : undefined);
    return { groupId: g[0].groupId, samples: g.map((r) => ({ correct: r.correct, tpf: r.tpf })), incomplete, forcedFilter: forced };
  });
  const batch = scoreBatch(inputs, config);
  const summaries: GroupSummary[] = batch.groups.map((sg, gi) => {
    const recs = groups[gi];
    sg.samples.forEach((s, i) => {
      const r = recs[i];
      r.reward = s.reward;
      r.advantage = s.advantage;
      r.kept = s.kept;
      r.filterReason = s.filterReason;
    });
    return {
      groupId: sg.groupId,
      groupIndex: recs[0].groupIndex,
      promptId: recs[0].promptId,
      size: sg.size,
      correct: sg.correct,
      tpfRange: sg.tpfRange,
      kept: sg.kept,
      filterReason: sg.filterReason,
      policyVersions: [...new Set(recs.map((r) => `${r.policy.name}@${r.policy.version}`))],
    };
  });
  return { groups: summaries, batch };
}
