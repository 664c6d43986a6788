// Queue names. These strings live in Redis: renaming one strands every job already queued under the
// old name (workers stop seeing it). Add new kinds; never rename or reuse one.
export const QUEUES = Object.freeze({
  /** Text generation, one queue per served model: dllm.generation.<model>. */
  generation: 'dllm.generation',
  /** RL rollouts (reserved; the RL issue adds the job file). */
  rollout: 'dllm.rollout',
  /** Distillation (reserved; the RL issue adds the job file). */
  distill: 'dllm.distill',
} as const);

export type QueueKind = keyof typeof QUEUES;

/** Model names as they appear in queue names (no ':' — BullMQ uses it as the key separator). */
export const QUEUE_MODEL_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The queue of a job kind; kinds routed per model get `.<model>` appended. */
export function queueName(kind: QueueKind, model?: string): string {
  const base = QUEUES[kind];
  if (!base) throw new Error(`unknown queue kind '${String(kind)}'`);
  if (model === undefined) return base;
  if (!QUEUE_MODEL_RE.test(model)) throw new Error(`model name '${model}' cannot be part of a queue name (letters, digits, . _ - only)`);
  return `${base}.${model}`;
}

/** Inverse of queueName: { kind, model } or undefined for a name that is not ours. */
export function parseQueueName(name: string): { kind: QueueKind; model?: string } | undefined {
  for (const [kind, base] of Object.entries(QUEUES) as [QueueKind, string][]) {
    if (name === base) return { kind };
    if (name.startsWith(base + '.')) {
      const model = name.slice(base.length + 1);
      if (QUEUE_MODEL_RE.test(model)) return { kind, model };
    }
  }
  return undefined;
}
