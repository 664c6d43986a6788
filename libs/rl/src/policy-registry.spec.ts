import { applyStaleness, isStale } from './policy-registry';

describe('isStale', () => {
  it('checks the required version and the staleness bound in registry order', () => {
    expect(isStale(undefined, 0, 5, null).stale).toBe(false);
    expect(isStale({ requiredVersion: 'v3' }, 2, 5, 3)).toEqual({ stale: true, why: 'produced by version #2, older than the required #3' });
    expect(isStale({ requiredVersion: 'v3' }, 3, 5, 3).stale).toBe(false);
    expect(isStale({ requiredVersion: 'v9' }, 3, 5, null).stale).toBe(true);
    expect(isStale({ maxStaleness: 1 }, 4, 5, null).stale).toBe(false);
    expect(isStale({ maxStaleness: 1 }, 3, 5, null).stale).toBe(true);
  });
});

describe('applyStaleness', () => {
  const recs = () => [
    { policy: { name: 'm', version: 'a' }, status: 'completed', stale: false, correct: true, error: null as string | null },
    { policy: { name: 'm', version: 'b' }, status: 'truncated', stale: false, correct: false, error: null as string | null },
    { policy: { name: 'm', version: 'a' }, status: 'failed', stale: false, correct: false, error: 'x' as string | null },
  ];
  const seq = (_: string, v: string) => ({ a: 1, b: 3 })[v as 'a' | 'b'] ?? 0;
  it('marks samples beyond the bound, leaves failed ones alone', async () => {
    const r = recs();
    expect(await applyStaleness(r, { maxStaleness: 1, onStale: 'mark' }, seq, 3, null)).toBe(1);
    expect(r.map((x) => [x.stale, x.status])).toEqual([
      [true, 'completed'],
      [false, 'truncated'],
      [false, 'failed'],
    ]);
  });
  it('rejects: status failed with the reason', async () => {
    const r = recs();
    await applyStaleness(r, { requiredVersion: 'b', onStale: 'reject' }, seq, 3, 3);
    expect(r[0]).toMatchObject({ stale: true, status: 'failed', correct: false, error: 'stale_policy: produced by version #1, older than the required #3' });
    expect(r[1].stale).toBe(false);
  });
  it('no bound: nothing happens', async () => {
    const r = recs();
    expect(await applyStaleness(r, undefined, seq, 3, null)).toBe(0);
    expect(await applyStaleness(r, { onStale: 'mark' }, seq, 3, null)).toBe(0);
  });
});
