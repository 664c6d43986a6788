import { expectedForwards, jobWorkSchema, workOf } from './work';

describe('job work', () => {
  it('resolves the engine defaults and keeps the requested policy', () => {
    expect(workOf({}, 1)).toEqual({ sequences: 1, maxNewTokens: 256, policy: 'default' });
    expect(workOf({ policy: 'ar', maxNewTokens: 64 }, 8)).toEqual({ sequences: 8, maxNewTokens: 64, policy: 'ar' });
    // invalid options (rejected at the edge anyway) cost like the defaults, never throw
    expect(workOf({ maxNewTokens: -3 }, 2)).toEqual({ sequences: 2, maxNewTokens: 256, policy: 'default' });
    expect(jobWorkSchema.safeParse(workOf({ policy: 'entropy' }, 3)).success).toBe(true);
  });

  it('costs one prefill plus maxNewTokens / TPF decode passes per sequence', () => {
    expect(expectedForwards({ sequences: 1, maxNewTokens: 99, policy: 'ar' }, 1)).toBe(100);
    expect(expectedForwards({ sequences: 4, maxNewTokens: 100, policy: 'fast-dllm-v2' }, 2.5)).toBe(4 * 41);
    expect(expectedForwards({ sequences: 0, maxNewTokens: 100, policy: 'ar' }, 1)).toBe(0);
    // a TPF of 0 (nothing measured yet) must not divide by zero
    expect(Number.isFinite(expectedForwards({ sequences: 1, maxNewTokens: 10, policy: 'ar' }, 0))).toBe(true);
  });
});
