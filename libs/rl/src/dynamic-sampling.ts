// Dynamic sampling (DAPO-style refill) as a pure planner. The rollout coordinator calls plan()
// every time a group finishes; it says which finished groups make the batch, how many more prompts
// to launch to make up for filtered groups, and which in-flight groups to cancel once the batch is full.

export interface PlannerGroup {
  groupId: string;
  /** Order in which the group finished (earlier finished groups win batch slots). */
  finishedAt: number;
  /** Passed the reward filters (and the staleness bound). */
  kept: boolean;
}

export interface PlanInput {
  /** Groups wanted in the batch. */
  targetGroups: number;
  /** Finished groups (kept or filtered), any order. */
  finished: readonly PlannerGroup[];
  /** Group ids still generating. */
  inFlight: readonly string[];
  /** Prompts not launched yet (the over-sampling reserve). */
  remainingPrompts: number;
  /** Most groups generating at once (default: unbounded). */
  maxInFlight?: number;
  /** Keep rate assumed before anything finished, and the floor of the measured one (default 0.25). */
  minKeepRate?: number;
}

export interface Plan {
  /** Kept groups that make the batch (first finished first), at most targetGroups. */
  batch: string[];
  /** Kept groups beyond the target: reported with reason 'batch_full'. */
  surplus: string[];
  /** How many new groups to launch now. */
  launch: number;
  /** In-flight groups to cancel (the batch is full). */
  cancel: string[];
  full: boolean;
  /** Nothing left to wait for: full, or every prompt is spent and nothing is generating. */
  done: boolean;
}

export function planDynamicSampling(input: PlanInput): Plan {
  const { targetGroups, remainingPrompts } = input;
  if (!Number.isInteger(targetGroups) || targetGroups < 1) throw new RangeError(`targetGroups must be a positive integer, got ${targetGroups}`);
  if (!Number.isInteger(remainingPrompts) || remainingPrompts < 0)
    throw new RangeError(`remainingPrompts must be a non-negative integer, got ${remainingPrompts}`);
  const maxInFlight = input.maxInFlight ?? Number.POSITIVE_INFINITY;
  const minRate = input.minKeepRate ?? 0.25;
  if (!(minRate > 0 && minRate <= 1)) throw new RangeError(`minKeepRate must be in (0, 1], got ${minRate}`);

  const keptInOrder = input.finished.filter((g) => g.kept).sort((a, b) => a.finishedAt - b.finishedAt || (a.groupId < b.groupId ? -1 : 1));
  const batch = keptInOrder.slice(0, targetGroups).map((g) => g.groupId);
  const surplus = keptInOrder.slice(targetGroups).map((g) => g.groupId);
  if (batch.length >= targetGroups) {
    return { batch, surplus, launch: 0, cancel: [...input.inFlight], full: true, done: true };
  }
  const need = targetGroups - batch.length;
  // expected keep rate: measured so far, floored so one unlucky group cannot ask for hundreds
  const rate = input.finished.length > 0 ? Math.max(batch.length / input.finished.length, minRate) : 1;
  const wanted = Math.ceil(need / rate);
  const room = Math.max(0, maxInFlight - input.inFlight.length);
  const launch = Math.max(0, Math.min(wanted - input.inFlight.length, remainingPrompts, room));
  const done = launch === 0 && input.inFlight.length === 0;
  return { batch, surplus, launch, cancel: [], full: false, done };
}
