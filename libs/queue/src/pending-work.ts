// Pending work of the farm's queues in expected forward passes: the number queue-driven autoscaling
// follows (docs/DEPLOY.md). KEDA's Redis list scaler sees only `bull:<queue>:wait`; this counts the
// waiting, prioritized, delayed and active jobs, each weighted by its forward passes.
//
// Per queue and scrape: BullMQ's job counts, plus a sample of at most `sampleSize` jobs per state
// whose mean cost scales the count (exact for queues up to the sample size). The TPF that turns
// tokens into forwards is measured, not assumed: tokens / forwards over the model's TPF-reporting (generation) queues' most recently
// completed jobs, per decoding policy, falling back to the model-wide figure and then to 1 (AR,
// the most work a sequence can cost).
import type { Job, Queue } from 'bullmq';
import { expectedForwards, jobWorkSchema, type JobWork } from '@dllm/contracts';

export const PENDING_STATES = ['waiting', 'prioritized', 'delayed', 'active'] as const;
export type PendingState = (typeof PENDING_STATES)[number];

export interface PendingQueue {
  queue: Queue;
  model: string;
  /** Whether its completed jobs report tokens and forwards (generation does; rollout / distill parents do not). Default true. */
  measuresTpf?: boolean;
}

export interface PendingWorkReading {
  queue: string;
  model: string;
  forwards: number;
  jobs: number;
}

/** Tokens and forwards a finished job reports in its return value, if any. */
function finishedStats(rv: unknown): { tokens: number; forwards: number } | null {
  if (!rv || typeof rv !== 'object') return null;
  const r = rv as { usage?: { completionTokens?: unknown }; stats?: { forwards?: unknown }; tokens?: unknown; forwards?: unknown };
  const tokens = Number(r.usage?.completionTokens ?? NaN);
  const forwards = Number(r.stats?.forwards ?? NaN);
  if (Number.isFinite(tokens) && Number.isFinite(forwards) && forwards > 0) return { tokens, forwards };
  return null;
}

function workOfJob(job: Job): JobWork | null {
  const w = jobWorkSchema.safeParse((job.data as { work?: unknown } | undefined)?.work);
  return w.success ? w.data : null;
}

/** Forwards already spent by an active job, from its progress (generation: `forwards`; distill: `done` of `total`). */
function doneFraction(job: Job, work: JobWork, tpf: number): number {
  const p = job.progress as { forwards?: unknown; done?: unknown; total?: unknown } | number | undefined;
  if (!p || typeof p !== 'object') return 0;
  if (typeof p.forwards === 'number') return Math.min(1, p.forwards / Math.max(1, expectedForwards(work, tpf)));
  if (typeof p.done === 'number' && typeof p.total === 'number' && p.total > 0) return Math.min(1, p.done / p.total);
  return 0;
}

export class PendingWorkEstimator {
  constructor(
    private readonly queues: () => PendingQueue[],
    private readonly o: { sampleSize?: number; tpfSample?: number } = {},
  ) {}

  /** Measured TPF per policy (and '*' for all) from the queue's most recently completed jobs. */
  async measuredTpf(queue: Queue): Promise<Map<string, number>> {
    const n = this.o.tpfSample ?? 50;
    const done = await queue.getJobs(['completed'], 0, n - 1, false);
    const sums = new Map<string, { tokens: number; forwards: number }>();
    for (const j of done) {
      const s = finishedStats(j?.returnvalue);
      const w = j ? workOfJob(j) : null;
      if (!s) continue;
      for (const key of w ? [w.policy, '*'] : ['*']) {
        const acc = sums.get(key) ?? { tokens: 0, forwards: 0 };
        acc.tokens += s.tokens;
        acc.forwards += s.forwards;
        sums.set(key, acc);
      }
    }
    const out = new Map<string, number>();
    for (const [k, v] of sums) if (v.tokens > 0) out.set(k, v.tokens / v.forwards);
    return out;
  }

  async read(): Promise<PendingWorkReading[]> {
    const size = this.o.sampleSize ?? 100;
    const out: PendingWorkReading[] = [];
    const tpfByModel = new Map<string, Map<string, number>>();
    const targets = this.queues();
    // TPF per model, from the queues whose completed jobs report tokens and forwards.
    for (const { queue, model } of targets.filter((t) => t.measuresTpf !== false)) {
      const m = await this.measuredTpf(queue);
      const prev = tpfByModel.get(model) ?? new Map<string, number>();
      for (const [k, v] of m) if (!prev.has(k)) prev.set(k, v);
      tpfByModel.set(model, prev);
    }
    for (const { queue, model } of targets) {
      const tpfs = tpfByModel.get(model) ?? new Map<string, number>();
      const tpfFor = (policy: string) => tpfs.get(policy) ?? tpfs.get('*') ?? 1;
      const counts = await queue.getJobCounts(...PENDING_STATES);
      let forwards = 0;
      let jobs = 0;
      for (const state of PENDING_STATES) {
        const count = counts[state] ?? 0;
        if (count === 0) continue;
        jobs += count;
        const sample = (await queue.getJobs([state], 0, size - 1, true)).filter((j): j is Job => !!j);
        let sum = 0;
        for (const j of sample) {
          const w = workOfJob(j);
          if (!w) continue; // an aggregating parent, or a job from a producer that does not record work
          const tpf = tpfFor(w.policy);
          const f = expectedForwards(w, tpf);
          sum += state === 'active' ? f * (1 - doneFraction(j, w, tpf)) : f;
        }
        if (sample.length > 0) forwards += (sum / sample.length) * count;
      }
      out.push({ queue: queue.name, model, forwards: Math.round(forwards), jobs });
    }
    return out;
  }
}
