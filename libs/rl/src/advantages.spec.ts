import { batchAdvantages, groupRewards, groupZScore, minMax, populationStd, rewardConfigSchema, sampleStd, scoreBatch } from './advantages';

const S = (acc: number[], tpf: number[]) => acc.map((a, i) => ({ correct: a === 1, tpf: tpf[i] }));
const close = (got: number[], want: number[], digits = 6) => {
  expect(got).toHaveLength(want.length);
  got.forEach((g, i) => expect(g).toBeCloseTo(want[i], digits));
};

describe('group statistics', () => {
  it('population std divides by G, sample std by N-1', () => {
    expect(populationStd([2, 3, 4, 5])).toBeCloseTo(Math.sqrt(1.25), 12);
    expect(sampleStd([2, 3, 4, 5])).toBeCloseTo(Math.sqrt(5 / 3), 12);
    expect(sampleStd([7])).toBe(0);
  });
  it('zero variance gives 0 (z-score) and 0.5 (min-max), never NaN', () => {
    expect(groupZScore([0.1, 0.1, 0.1])).toEqual([0, 0, 0]);
    expect(groupZScore([0, 0])).toEqual([0, 0]);
    expect(minMax([3, 3])).toEqual([0.5, 0.5]);
  });
  it('rejects non-finite values', () => {
    expect(() => groupZScore([1, NaN])).toThrow(/finite/);
    expect(() => groupRewards(S([1, 0], [1, Infinity]))).toThrow(/finite/);
  });
});

describe('LightningRL group rewards (hand-computed)', () => {
  // acc [1,0,0,1]: mean .5, population std .5 -> z = [1,-1,-1,1]
  // tpf [2,3,4,5]: mean 3.5, population std sqrt(1.25) = 1.118034 -> z = [-1.341641, -0.447214, 0.447214, 1.341641]
  it('zscore + zscore (default)', () => {
    const g = groupRewards(S([1, 0, 0, 1], [2, 3, 4, 5]));
    close(
      g.rewards.map((r) => r.accuracy),
      [1, -1, -1, 1],
    );
    close(
      g.rewards.map((r) => r.tpf),
      [-1.341641, -0.447214, 0.447214, 1.341641],
    );
    close(
      g.rewards.map((r) => r.total),
      [-0.341641, -1.447214, -0.552786, 2.341641],
    );
    expect(g.filtered).toBeNull();
    expect(g.correct).toBe(2);
    expect(g.tpfRange).toBe(3);
  });
  it('minmax TPF: (t - 2) / 3', () => {
    const g = groupRewards(S([1, 0, 0, 1], [2, 3, 4, 5]), rewardConfigSchema.parse({ tpf: 'minmax' }));
    close(
      g.rewards.map((r) => r.total),
      [1 + 0, -1 + 1 / 3, -1 + 2 / 3, 1 + 1],
    );
  });
  it('raw coefficient TPF: 0.5 * t', () => {
    const g = groupRewards(S([1, 0, 0, 1], [2, 3, 4, 5]), rewardConfigSchema.parse({ tpf: 'raw', tpfCoefficient: 0.5 }));
    close(
      g.rewards.map((r) => r.total),
      [2, 0.5, 1, 3.5],
    );
  });
  it('sign accuracy vs z-scored accuracy on [1,0,0]', () => {
    const z = groupRewards(S([1, 0, 0], [1, 2, 4]), rewardConfigSchema.parse({ tpf: 'off' }));
    // mean 1/3, population std sqrt(2/9) = 0.471405
    close(
      z.rewards.map((r) => r.accuracy),
      [1.414214, -0.707107, -0.707107],
    );
    const s = groupRewards(S([1, 0, 0], [1, 2, 4]), rewardConfigSchema.parse({ tpf: 'off', accuracy: 'sign' }));
    close(
      s.rewards.map((r) => r.total),
      [1, -1, -1],
    );
  });
  it('filters: all wrong, TPF range < 0.01; all-correct groups are kept', () => {
    expect(groupRewards(S([0, 0, 0], [1, 2, 3])).filtered).toBe('all_wrong');
    expect(groupRewards(S([1, 0, 0], [2, 2.005, 2])).filtered).toBe('tpf_range_below_0.01');
    const allRight = groupRewards(S([1, 1, 1], [1, 2, 3]));
    expect(allRight.filtered).toBeNull();
    close(
      allRight.rewards.map((r) => r.accuracy),
      [0, 0, 0],
    );
    close(
      allRight.rewards.map((r) => r.tpf),
      [-1.224745, 0, 1.224745],
    );
    expect(groupRewards(S([0, 0], [1, 2]), rewardConfigSchema.parse({ dropAllWrong: false })).filtered).toBeNull();
    expect(groupRewards(S([1, 0], [2, 2]), rewardConfigSchema.parse({ minTpfRange: 0 })).filtered).toBeNull();
  });
});

describe('batch advantages', () => {
  it('one group: r / sqrt(8/3) (sum of squares is 8, mean 0)', () => {
    const { advantages, mean, std } = batchAdvantages([-0.341641, -1.447214, -0.552786, 2.341641]);
    expect(mean).toBeCloseTo(0, 6);
    expect(std).toBeCloseTo(Math.sqrt(8 / 3), 5);
    close(advantages, [-0.209211, -0.886234, -0.338511, 1.433956], 5);
  });
  it('all equal or a single sample gives 0, never NaN', () => {
    expect(batchAdvantages([0.3, 0.3, 0.3]).advantages).toEqual([0, 0, 0]);
    expect(batchAdvantages([5]).advantages).toEqual([0]);
    expect(batchAdvantages([]).advantages).toEqual([]);
  });
  it('floors the std at 1e-8', () => {
    const a = batchAdvantages([0, 1e-12]).advantages;
    // sample std = 1e-12 / sqrt(2) < 1e-8: divide by 1e-8
    close(a, [-0.5e-12 / 1e-8, 0.5e-12 / 1e-8], 12);
  });
});

describe('scoreBatch', () => {
  it('normalizes over kept groups only and reports the filtered with their reason', () => {
    const b = scoreBatch([
      { groupId: 'a', samples: S([1, 0, 0, 1], [2, 3, 4, 5]) },
      { groupId: 'wrong', samples: S([0, 0, 0], [1, 2, 3]) },
      { groupId: 'flat', samples: S([1, 0, 0], [2, 2.005, 2]) },
      { groupId: 'right', samples: S([1, 1, 1], [1, 2, 3]) },
      { groupId: 'broken', samples: S([1, 0], [1, 3]), incomplete: true },
    ]);
    expect(b.groups.map((g) => [g.groupId, g.kept, g.filterReason])).toEqual([
      ['a', true, null],
      ['wrong', false, 'all_wrong'],
      ['flat', false, 'tpf_range_below_0.01'],
      ['right', true, null],
      ['broken', false, 'incomplete'],
    ]);
    expect(b.filtered).toEqual({ all_wrong: 1, 'tpf_range_below_0.01': 1, incomplete: 1 });
    // kept rewards: group a (sum of squares 8) + group right (sum of squares 3), mean 0, N = 7
    const std = Math.sqrt(11 / 6);
    expect(b.rewardStd).toBeCloseTo(std, 5);
    close(
      b.groups[0].samples.map((s) => s.advantage!),
      [-0.341641 / std, -1.447214 / std, -0.552786 / std, 2.341641 / std],
      5,
    );
    close(
      b.groups[3].samples.map((s) => s.advantage!),
      [-1.224745 / std, 0, 1.224745 / std],
      5,
    );
    expect(b.groups[1].samples.every((s) => s.advantage === null && !s.kept)).toBe(true);
    expect(b.keptSamples).toBe(7);
  });
  it('rejects duplicate group ids and empty groups', () => {
    expect(() =>
      scoreBatch([
        { groupId: 'x', samples: S([1], [1]) },
        { groupId: 'x', samples: S([1], [1]) },
      ]),
    ).toThrow(/duplicate/);
    expect(() => scoreBatch([{ groupId: 'x', samples: [] }])).toThrow(/at least one/);
  });
});
