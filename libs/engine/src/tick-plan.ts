// One scheduler tick's forwards (engine.ts): which rows run together, which pad up into a larger
// forward, and which wait a tick so that a later forward is fuller.
//
// Every active sequence asks for one forward per tick (`Sequence.nextForward`). Rows of one model
// whose new-token counts share a size class (`sizeClass`) run as one batched forward, padded to the
// longest row (batch.ts). With the sub-block cache a decoder alternates between two shapes: 32-slot
// forwards (a block's first window, the commit forward) and 8-16-slot sub-block steps, so a batch of
// 8 sequences at random phases splits every tick into two half-empty forwards (3.6 rows per forward
// measured at batch 8 on tiny-dllm). Two ways to keep forwards full, both decided here:
//
// - **Padding merge** (packing mixed shapes into one forward): rows of a smaller class join a larger
//   class's forward, padded to its S, when the cost model says one padded forward is cheaper than two:
//   `cost(B1 + B2, S1) <= cost(B1, S1) + cost(B2, S2)`. With cost = fixed + perPosition x B x S (fitted
//   online from the engine's own session.run timings, `ForwardCostModel`) that is
//   `perPosition x B2 x (S1 - S2) <= fixed`: true where a forward's cost is mostly fixed (a GPU, or
//   tiny batches), false on a CPU where cost follows the positions computed.
// - **Phase alignment** (holding): of the forwards left, the one with the most rows runs; a forward
//   with at most `holdBelow` of its rows waits (its rows keep their spec) for at most `maxHoldTicks`
//   ticks. Waiting rows gather: sequences reaching the end of a block meet in one 32-slot forward
//   and then step through their next block together. No row waits more than `maxHoldTicks` ticks, so
//   nothing starves; greedy outputs do not depend on batch composition (batch invariance tests).

/**
 * Rows whose new-token counts share a class run in one forward, padded to the longest (batch.ts):
 * 1 (AR steps), 2..16 (sub-block steps: the active sub-block plus the slots before it whose K/V
 * changed), then powers of two (windows, prefills). Padding costs < 2x compute within a class
 * and keeps batches full instead of splitting them by exact length.
 */
export function sizeClass(S: number): number {
  if (S <= 1) return 1;
  if (S <= 16) return 16;
  return 2 ** Math.ceil(Math.log2(S));
}

/** What the planner needs of one row: its model, new-token count, and how many ticks it has waited. */
export interface PlanRow {
  /** ModelHandle.id: rows of different models never share a forward. */
  handle: number;
  /** New positions of the row's forward (ForwardSpec.ids.length). */
  S: number;
  /** Ticks this row's current forward has already been held. */
  held: number;
  /**
   * false: never hold this row (default true). The engine passes false for a request's first forward
   * (prefill, AR prompt): no other row enters that shape by waiting, so holding it only delays the request.
   */
  holdable?: boolean;
}

export interface TickPlanOptions {
  /** Most ticks a row's forward may be held (0 = never hold: every forward runs every tick). */
  maxHoldTicks: number;
  /** A forward is held only when its rows are at most this fraction of the largest forward's rows (0..1). */
  holdBelow: number;
  /** Pad smaller size classes into a larger class's forward when the cost model says it is cheaper ('cost'), or never. */
  padding: 'cost' | 'never';
  /** Estimated ms of a forward over `positions` = B x S padded positions; null = no estimate yet (no padding merges). */
  cost: ((positions: number) => number) | null;
}

/** The default tick policy: hold small forwards up to 2 ticks when at most half the size of the largest. */
export const DEFAULT_TICK_PLAN: Omit<TickPlanOptions, 'cost'> = { maxHoldTicks: 2, holdBelow: 0.5, padding: 'cost' };

/** A forward's cost as a line: ms = fixedMs + perPositionMs x positions (B x S, padding included). */
export interface LinearCost {
  fixedMs: number;
  perPositionMs: number;
}

/** ms of a forward over `positions` under `c`. */
export function costOf(c: LinearCost, positions: number): number {
  return c.fixedMs + c.perPositionMs * positions;
}

/** Engine option (`tickPlan`): the planner's policy, and optionally a fixed cost model instead of the fitted one. */
export type TickPlanConfig = Partial<Omit<TickPlanOptions, 'cost'>> & { costModel?: LinearCost };

/**
 * The policy a config gives (DEFAULT_TICK_PLAN where unset) and its fixed cost model (null: fit online).
 * Errors: RangeError for maxHoldTicks < 0 or not an integer, holdBelow outside [0, 1], a negative cost coefficient.
 */
export function resolveTickPlan(config: TickPlanConfig = {}): { plan: Omit<TickPlanOptions, 'cost'>; fixedCost: LinearCost | null } {
  const { costModel, ...rest } = config;
  const plan = { ...DEFAULT_TICK_PLAN, ...rest };
  checkPlan(plan);
  if (costModel && !(costModel.fixedMs >= 0 && costModel.perPositionMs >= 0))
    throw new RangeError(`tickPlan.costModel needs fixedMs >= 0 and perPositionMs >= 0, got ${JSON.stringify(costModel)}`);
  return { plan, fixedCost: costModel ?? null };
}

function checkPlan(opts: Omit<TickPlanOptions, 'cost'>): void {
  if (!(opts.maxHoldTicks >= 0) || !Number.isInteger(opts.maxHoldTicks))
    throw new RangeError(`maxHoldTicks must be a non-negative integer, got ${opts.maxHoldTicks}`);
  if (!(opts.holdBelow >= 0 && opts.holdBelow <= 1)) throw new RangeError(`holdBelow must be in [0, 1], got ${opts.holdBelow}`);
}

export interface TickPlan<T> {
  /** Forwards to run this tick, in order; each is one batched forward of one model (rows padded to the longest). */
  forwards: T[][];
  /** Rows whose forward waits for a later tick (their `held` should be incremented by the caller). */
  held: T[];
}

function maxS(rows: readonly PlanRow[]): number {
  let s = 0;
  for (const r of rows) s = Math.max(s, r.S);
  return s;
}

/**
 * Plans one tick. Rows are grouped by (handle, sizeClass(S)); within a handle, smaller groups are
 * merged into the largest-S group while the cost model says padding is cheaper than a second forward;
 * then, when more than one forward is left for a handle, forwards much smaller than the largest wait
 * (bounded by maxHoldTicks). Pure: the caller keeps held rows and their counters.
 * Errors: RangeError for maxHoldTicks < 0 or holdBelow outside [0, 1].
 */
export function planTick<T extends PlanRow>(rows: readonly T[], opts: TickPlanOptions): TickPlan<T> {
  checkPlan(opts);
  const byHandle = new Map<number, Map<number, T[]>>();
  for (const r of rows) {
    let h = byHandle.get(r.handle);
    if (!h) byHandle.set(r.handle, (h = new Map()));
    const c = sizeClass(r.S);
    let g = h.get(c);
    if (!g) h.set(c, (g = []));
    g.push(r);
  }
  const forwards: T[][] = [];
  const held: T[] = [];
  for (const classes of byHandle.values()) {
    // Largest S first: smaller groups pad up into it.
    let groups = [...classes.entries()].sort((a, b) => b[0] - a[0]).map(([, g]) => g);
    if (opts.padding === 'cost' && opts.cost && groups.length > 1) groups = mergeByCost(groups, opts.cost);
    if (groups.length > 1 && opts.maxHoldTicks > 0) {
      let biggest = groups[0];
      for (const g of groups) if (g.length > biggest.length) biggest = g;
      const kept: T[][] = [];
      for (const g of groups) {
        const mayWait = g !== biggest && g.length <= opts.holdBelow * biggest.length && g.every((r) => r.held < opts.maxHoldTicks && r.holdable !== false);
        if (mayWait) held.push(...g);
        else kept.push(g);
      }
      groups = kept;
    }
    forwards.push(...groups);
  }
  return { forwards, held };
}

function mergeByCost<T extends PlanRow>(groups: T[][], cost: (positions: number) => number): T[][] {
  const out: T[][] = [groups[0]];
  for (const g of groups.slice(1)) {
    const host = out[0];
    const S1 = maxS(host);
    const S2 = maxS(g);
    const S = Math.max(S1, S2);
    const merged = cost((host.length + g.length) * S);
    const apart = cost(host.length * S1) + cost(g.length * S2);
    if (merged <= apart) out[0] = [...host, ...g];
    else out.push(g);
  }
  return out;
}

/**
 * Online linear model of a forward's cost: ms = fixed + perPosition x positions (positions = B x S,
 * padding included), fitted by exponentially weighted least squares over the engine's own
 * session.run timings (each observation's weight decays by `decay` per later observation). Until it
 * has `minObservations` over at least two distinct sizes, `estimate` returns null (the planner then
 * never pads across classes). Both coefficients are clamped at >= 0.
 */
export class ForwardCostModel {
  private sw = 0;
  private sx = 0;
  private sy = 0;
  private sxx = 0;
  private sxy = 0;
  private n = 0;
  private firstX: number | null = null;
  private spread = false;

  constructor(
    private readonly decay = 0.99,
    private readonly minObservations = 8,
  ) {}

  /** Records one forward: `positions` = B x S it computed, `ms` inside session.run. */
  observe(positions: number, ms: number): void {
    if (!(positions > 0) || !(ms >= 0) || !Number.isFinite(ms)) return;
    this.sw = this.sw * this.decay + 1;
    this.sx = this.sx * this.decay + positions;
    this.sy = this.sy * this.decay + ms;
    this.sxx = this.sxx * this.decay + positions * positions;
    this.sxy = this.sxy * this.decay + positions * ms;
    this.n++;
    if (this.firstX === null) this.firstX = positions;
    else if (positions !== this.firstX) this.spread = true;
  }

  /** The fitted { fixedMs, perPositionMs }, or null before enough varied observations. */
  coefficients(): LinearCost | null {
    if (this.n < this.minObservations || !this.spread) return null;
    const mx = this.sx / this.sw;
    const my = this.sy / this.sw;
    const vxx = this.sxx / this.sw - mx * mx;
    if (!(vxx > 0)) return null;
    const slope = Math.max(0, (this.sxy / this.sw - mx * my) / vxx);
    const fixed = Math.max(0, my - slope * mx);
    return { fixedMs: fixed, perPositionMs: slope };
  }

  /** Estimated ms of a forward over `positions`, or null before the model is fitted. */
  estimate(positions: number): number | null {
    const c = this.coefficients();
    return c ? costOf(c, positions) : null;
  }
}
