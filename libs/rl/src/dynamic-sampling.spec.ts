import { planDynamicSampling } from './dynamic-sampling';

const f = (groupId: string, finishedAt: number, kept: boolean) => ({ groupId, finishedAt, kept });

describe('planDynamicSampling', () => {
  it('launches the target first', () => {
    expect(planDynamicSampling({ targetGroups: 4, finished: [], inFlight: [], remainingPrompts: 10 })).toMatchObject({ launch: 4, full: false, done: false });
  });
  it('refills after filtered groups using the measured keep rate', () => {
    // 2 finished, 1 kept (rate .5), 2 in flight: need 3 -> wants ceil(3/.5)=6 in flight -> launch 4
    const p = planDynamicSampling({ targetGroups: 4, finished: [f('a', 1, true), f('b', 2, false)], inFlight: ['c', 'd'], remainingPrompts: 10 });
    expect(p).toMatchObject({ batch: ['a'], launch: 4, cancel: [], full: false });
  });
  it('caps the launch by the reserve and by maxInFlight', () => {
    expect(planDynamicSampling({ targetGroups: 4, finished: [f('a', 1, false)], inFlight: [], remainingPrompts: 2 }).launch).toBe(2);
    expect(planDynamicSampling({ targetGroups: 4, finished: [], inFlight: ['x'], remainingPrompts: 9, maxInFlight: 2 }).launch).toBe(1);
  });
  it('full: first finished kept groups win, the rest is surplus, in-flight siblings are cancelled', () => {
    const p = planDynamicSampling({
      targetGroups: 2,
      finished: [f('late', 9, true), f('a', 1, true), f('x', 2, false), f('b', 3, true)],
      inFlight: ['c', 'd'],
      remainingPrompts: 5,
    });
    expect(p).toEqual({ batch: ['a', 'b'], surplus: ['late'], launch: 0, cancel: ['c', 'd'], full: true, done: true });
  });
  it('done without filling when the reserve is spent and nothing is generating', () => {
    expect(planDynamicSampling({ targetGroups: 3, finished: [f('a', 1, true), f('b', 2, false)], inFlight: [], remainingPrompts: 0 })).toMatchObject({
      batch: ['a'],
      full: false,
      done: true,
      launch: 0,
    });
  });
  it('rejects bad sizes', () => {
    expect(() => planDynamicSampling({ targetGroups: 0, finished: [], inFlight: [], remainingPrompts: 1 })).toThrow(/targetGroups/);
    expect(() => planDynamicSampling({ targetGroups: 1, finished: [], inFlight: [], remainingPrompts: -1 })).toThrow(/remainingPrompts/);
  });
});
