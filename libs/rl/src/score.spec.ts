import type { GenerationResult } from '@dllm/engine';
import { scoreRecords } from './score';
import { failedRecord, recordFromGeneration, trajectoryRecordSchema, type TrajectoryRecord } from './trajectory';
import { verifiers } from './verifiers';

// A GenerationResult as the engine returns it with trajectory: true (a data fixture, not a stand-in engine).
function result(text: string, tokens: number, forwards: number, finishReason: GenerationResult['finishReason'] = 'stop'): GenerationResult {
  const ids = Array.from({ length: tokens }, (_, i) => 5 + i);
  const conf = ids.map(() => 0.5);
  const options = { policy: 'fast-dllm-v2', blockSize: 8, subBlockSize: 4, threshold: 0.9, temperature: 1, seed: 7 } as never;
  return {
    text,
    tokenIds: ids,
    finishReason,
    usage: { promptTokens: 6, completionTokens: tokens },
    stats: { forwards, tpf: forwards ? tokens / forwards : 0, wallMs: 3, prefillTokens: 2, prefixCacheHitTokens: 4 },
    model: { name: 'tiny', version: '1' },
    trajectory: {
      tokenIds: ids,
      stepMap: ids.map((_, i) => Math.min(i, forwards - 1)),
      confidence: conf,
      entropy: conf.map(() => 0.7),
      logprobs: conf.map(Math.log),
      blocks: [[0, tokens]],
      forwards,
      prefillForwards: 1,
      tpf: forwards ? tokens / forwards : 0,
      options,
      seed: 7,
      model: { name: 'tiny', version: '1' },
      promptTokens: 6,
      prefixCacheHitTokens: 4,
    },
  };
}

function rec(
  group: number,
  sample: number,
  text: string,
  tokens: number,
  forwards: number,
  reason: GenerationResult['finishReason'] = 'stop',
): TrajectoryRecord {
  const r = result(text, tokens, forwards, reason);
  const v = verifiers.bind('exact').verify({ response: r.text, answer: '4', truncated: r.finishReason === 'length' });
  return recordFromGeneration(
    {
      rolloutId: 'ro1',
      groupIndex: group,
      sampleIndex: sample,
      promptId: `p${group}`,
      prompt: 'Q: 2+2=?\nA:',
      answer: '4',
      verifier: 'exact',
      promptTokenIds: [3, 4, 5, 6, 7, 8],
    },
    r,
    v,
    undefined,
    2,
  );
}

describe('trajectory records and scoring', () => {
  it('copies the engine trajectory, flags truncation as wrong, and validates against the schema', () => {
    const ok = rec(0, 0, '#### 4', 4, 2);
    expect(ok).toMatchObject({
      groupId: 'ro1:g0',
      status: 'completed',
      correct: true,
      tpf: 2,
      numForwards: 2,
      responseLength: 4,
      seed: 7,
      policy: { name: 'tiny', version: '1', seq: 2 },
      promptTokenIds: [3, 4, 5, 6, 7, 8],
      prefixCache: { hitTokens: 4, promptTokens: 6, prefillTokens: 2 },
    });
    const cut = rec(0, 1, '#### 4', 4, 2, 'length');
    expect(cut).toMatchObject({ status: 'truncated', truncated: true, correct: false, extracted: '4' });
    expect(trajectoryRecordSchema.safeParse(ok).success).toBe(true);
    expect(() => recordFromGeneration({} as never, { ...result('', 0, 0), trajectory: undefined }, { correct: false, extracted: null })).toThrow(
      /trajectory = true/,
    );
  });

  it('scores groups in place: hand-computed LightningRL advantages, filtered groups with reasons', () => {
    // group 0: acc [1,0,0,1], tpf [2,3,4,5] (tokens/forwards); group 1 all wrong; group 2 has a failed sample
    const records = [
      rec(0, 3, '#### 4', 10, 2),
      rec(0, 0, '#### 4', 4, 2),
      rec(0, 1, '#### 5', 6, 2),
      rec(0, 2, '#### 5', 8, 2),
      rec(1, 0, '#### 1', 2, 2),
      rec(1, 1, '#### 2', 6, 2),
      rec(2, 0, '#### 4', 2, 1),
      failedRecord(
        { rolloutId: 'ro1', groupIndex: 2, sampleIndex: 1, promptId: 'p2', prompt: 'Q', answer: '4', verifier: 'exact', promptTokenIds: [] },
        'failed',
        'boom',
        1,
        { name: 'tiny', version: '1', seq: 0 },
        {},
      ),
    ];
    const { groups } = scoreRecords(records);
    expect(groups.map((g) => [g.groupIndex, g.kept, g.filterReason, g.correct, g.size])).toEqual([
      [0, true, null, 2, 4],
      [1, false, 'all_wrong', 0, 2],
      [2, false, 'incomplete', 1, 2],
    ]);
    const g0 = records.filter((r) => r.groupIndex === 0).sort((a, b) => a.sampleIndex - b.sampleIndex);
    const s = Math.sqrt(1.25);
    const r = [1 - 1.5 / s, -1 - 0.5 / s, -1 + 0.5 / s, 1 + 1.5 / s];
    g0.forEach((x, i) => {
      expect(x.reward!.total).toBeCloseTo(r[i], 10);
      expect(x.advantage!).toBeCloseTo(r[i] / Math.sqrt(8 / 3), 10);
      expect(x.kept).toBe(true);
    });
    for (const x of records.filter((r) => r.groupIndex > 0)) expect(x).toMatchObject({ kept: false, advantage: null });
    for (const x of records) expect(trajectoryRecordSchema.safeParse(x).success).toBe(true);
  });

  it('stale samples drop their group; forced reasons win', () => {
    const a = [rec(0, 0, '#### 4', 2, 2), rec(0, 1, '#### 5', 6, 2)];
    a[1].stale = true;
    const b = [rec(1, 0, '#### 4', 2, 2), rec(1, 1, '#### 5', 6, 2)];
    const { groups } = scoreRecords([...a, ...b], { forced: new Map([['ro1:g1', 'batch_full' as const]]) });
    expect(groups.map((g) => g.filterReason)).toEqual(['stale', 'batch_full']);
  });
});
