// The tick planner (tick-plan.ts): grouping by model and size class, padding merges decided by the
// cost model, phase alignment (holding small forwards, bounded), and the online cost fit.
import { DEFAULT_TICK_PLAN, ForwardCostModel, planTick, sizeClass, type PlanRow } from './tick-plan';

const row = (S: number, held = 0, handle = 1): PlanRow & { tag: string } => ({ handle, S, held, tag: `${handle}:${S}:${held}` });
const noHold = { maxHoldTicks: 0, holdBelow: 0.5, padding: 'never', cost: null } as const;
const shapes = (fs: PlanRow[][]) => fs.map((f) => f.map((r) => r.S));

describe('planTick', () => {
  it('groups rows by model and size class (1, 2..16, powers of two) and pads within a class', () => {
    expect([1, 2, 9, 16, 17, 32, 33, 64].map(sizeClass)).toEqual([1, 16, 16, 16, 32, 32, 64, 64]);
    const plan = planTick([row(1), row(9), row(12), row(32), row(1), row(9, 0, 2)], noHold);
    expect(shapes(plan.forwards)).toEqual([[32], [9, 12], [1, 1], [9]]);
    expect(plan.held).toEqual([]);
  });

  it("holds a forward with at most holdBelow of the largest one's rows, for at most maxHoldTicks ticks", () => {
    const steps = [12, 12, 9, 9, 12, 12].map((S) => row(S));
    const opts = { maxHoldTicks: 2, holdBelow: 0.5, padding: 'never', cost: null } as const;
    // two 32-slot rows (a block's first window, a commit) against six sub-block steps: they wait
    let plan = planTick([...steps, row(32), row(32)], opts);
    expect(shapes(plan.forwards)).toEqual([[12, 12, 9, 9, 12, 12]]);
    expect(plan.held.map((r) => r.S)).toEqual([32, 32]);
    // still waiting after one tick
    plan = planTick([...steps, row(32, 1), row(32, 1)], opts);
    expect(plan.held).toHaveLength(2);
    // a row that has waited maxHoldTicks runs, and so does the rest of its forward
    plan = planTick([...steps, row(32, 2), row(32, 1)], opts);
    expect(plan.held).toEqual([]);
    expect(shapes(plan.forwards)).toEqual([
      [32, 32],
      [12, 12, 9, 9, 12, 12],
    ]);
  });

  it('does not hold a forward larger than holdBelow of the largest, the largest itself, or anything when maxHoldTicks is 0', () => {
    const opts = { ...DEFAULT_TICK_PLAN, padding: 'never', cost: null } as const;
    const four = [row(12), row(12), row(12), row(12)];
    expect(planTick([...four, row(32), row(32), row(32)], opts).held).toEqual([]); // 3 > 0.5 x 4
    expect(planTick([...four, row(32), row(32)], opts).held).toHaveLength(2); // 2 <= 0.5 x 4
    expect(planTick([...four, row(32), row(32)], { ...opts, maxHoldTicks: 0 }).held).toEqual([]);
    // a row marked not holdable (a request's first forward) keeps its whole forward running
    expect(planTick([...four, row(32), { ...row(64), holdable: false }], opts).held.map((r) => r.S)).toEqual([32]);
    expect(planTick([...four, row(32), { ...row(32), holdable: false }], opts).held).toEqual([]);
    // models are planned apart: a lone row of another model is the largest of its own
    expect(planTick([...four, row(32, 0, 2)], opts).held).toEqual([]);
  });

  it('packs mixed shapes into one padded forward when the cost model says a forward costs mostly its fixed part', () => {
    const rows = [row(32), row(32), row(9), row(12), row(9)];
    const fixedHeavy = { ...noHold, padding: 'cost', cost: (x: number) => 5 + 0.001 * x } as const;
    const plan = planTick(rows, fixedHeavy);
    expect(shapes(plan.forwards)).toEqual([[32, 32, 9, 12, 9]]);
    // compute-bound (a CPU): padding three rows from 12 to 32 slots costs more than a second forward
    const perPosition = { ...noHold, padding: 'cost', cost: (x: number) => 0.5 + 0.05 * x } as const;
    expect(shapes(planTick(rows, perPosition).forwards)).toEqual([
      [32, 32],
      [9, 12, 9],
    ]);
    // the break-even: perPosition x B2 x (S1 - S2) <= fixed  (3 x 20 x 0.05 = 3)
    expect(planTick(rows, { ...perPosition, cost: (x: number) => 3 + 0.05 * x }).forwards).toHaveLength(1);
    // no estimate yet, or padding off: never pads across classes
    expect(planTick(rows, { ...fixedHeavy, cost: null }).forwards).toHaveLength(2);
    expect(planTick(rows, { ...fixedHeavy, padding: 'never' }).forwards).toHaveLength(2);
  });

  it('rejects bad options', () => {
    expect(() => planTick([], { ...noHold, maxHoldTicks: -1 })).toThrow(RangeError);
    expect(() => planTick([], { ...noHold, maxHoldTicks: 1.5 })).toThrow(/non-negative integer/);
    expect(() => planTick([], { ...noHold, holdBelow: 2 })).toThrow(/holdBelow/);
  });
});

describe('ForwardCostModel', () => {
  it('fits ms = fixed + perPosition x positions from observed forwards', () => {
    const m = new ForwardCostModel(1, 4);
    for (const x of [8, 32, 64, 256, 16, 128]) m.observe(x, 2 + 0.05 * x);
    const c = m.coefficients()!;
    expect(c.fixedMs).toBeCloseTo(2, 9);
    expect(c.perPositionMs).toBeCloseTo(0.05, 9);
    expect(m.estimate(100)).toBeCloseTo(7, 9);
  });

  it('gives no estimate before minObservations over at least two sizes, and never a negative coefficient', () => {
    const m = new ForwardCostModel(0.99, 3);
    m.observe(32, 1);
    m.observe(32, 1.1);
    m.observe(32, 0.9);
    expect(m.estimate(32)).toBeNull(); // one size only: the slope is unknown
    m.observe(64, 1);
    expect(m.coefficients()!.perPositionMs).toBeGreaterThanOrEqual(0);
    const down = new ForwardCostModel(1, 2);
    down.observe(10, 10);
    down.observe(100, 1); // decreasing cost: slope clamped to 0
    expect(down.coefficients()).toEqual({ fixedMs: 5.5, perPositionMs: 0 });
    down.observe(NaN, 1);
    down.observe(5, -1);
    expect(down.coefficients()).toEqual({ fixedMs: 5.5, perPositionMs: 0 });
  });

  it('forgets old observations (weights decay), so a slower or faster device phase moves the fit', () => {
    const m = new ForwardCostModel(0.5, 4);
    for (let i = 0; i < 20; i++) for (const x of [8, 64]) m.observe(x, 1 + 0.1 * x);
    for (let i = 0; i < 20; i++) for (const x of [8, 64]) m.observe(x, 4 + 0.1 * x);
    expect(m.coefficients()!.fixedMs).toBeCloseTo(4, 3);
  });
});
