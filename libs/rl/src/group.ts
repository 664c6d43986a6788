// One group: G samples of one prompt on one engine, started together so the engine batches them and
// they share the prompt's KV pages (prefix cache, namespaced by model version). Each sample gets its
// own seed; each is verified; the engine's trajectory becomes the record.
import type { DecodeOptions, Engine, GenerationResult } from '@dllm/engine';
import { failedRecord, recordFromGeneration, type SampleContext, type TrajectoryRecord } from './trajectory';
import type { BoundVerifier } from './verifiers';

export interface GroupSpec {
  rolloutId: string;
  groupIndex: number;
  promptId: string;
  prompt: string;
  answer: string | null;
  verifier: BoundVerifier;
  groupSize: number;
  /** Engine decode options (sampling included); seed and trajectory are set per sample. */
  options: Partial<DecodeOptions>;
  /** Seed of sample 0; sample i uses baseSeed + i (mod 2^32). */
  baseSeed: number;
}

export interface GroupRun {
  records: TrajectoryRecord[];
  completionTokens: number;
  promptTokens: number;
  prefixHitTokens: number;
  wallMs: number;
}

/** The engine surface a group needs (an Engine, or anything with the same generate, model and codec). */
export type GroupEngine = Pick<Engine, 'generate' | 'model' | 'codec'>;

export async function runGroup(engine: GroupEngine, spec: GroupSpec, signal?: AbortSignal): Promise<GroupRun> {
  if (!Number.isInteger(spec.groupSize) || spec.groupSize < 1) throw new RangeError(`groupSize must be a positive integer, got ${spec.groupSize}`);
  const t0 = Date.now();
  const seeds = Array.from({ length: spec.groupSize }, (_, i) => (spec.baseSeed + i) >>> 0);
  // Tokenize once and hand the ids to every sample, in the same tick as generate() (so a hot swap
  // cannot slip between them): the record carries exactly the ids the engine consumed.
  let promptTokenIds: number[] = [];
  let settled: PromiseSettledResult<GenerationResult>[];
  try {
    promptTokenIds = engine.codec.encode(spec.prompt);
    settled = await Promise.allSettled(
      seeds.map((seed) => engine.generate({ promptIds: promptTokenIds, options: { ...spec.options, seed, trajectory: true } }, { signal })),
    );
  } catch (e) {
    settled = seeds.map(() => ({ status: 'rejected', reason: e }) as PromiseRejectedResult);
  }
  const records: TrajectoryRecord[] = [];
  let completionTokens = 0;
  let promptTokens = 0;
  let prefixHitTokens = 0;
  settled.forEach((s, i) => {
    const ctx: SampleContext = {
      rolloutId: spec.rolloutId,
      groupIndex: spec.groupIndex,
      sampleIndex: i,
      promptId: spec.promptId,
      prompt: spec.prompt,
      answer: spec.answer,
      verifier: spec.verifier.name,
      promptTokenIds,
    };
    if (s.status === 'rejected') {
      const m = engine.model;
      const aborted = signal?.aborted === true;
      records.push(
        failedRecord(
          ctx,
          aborted ? 'aborted' : 'failed',
          String((s.reason as Error)?.message ?? s.reason),
          seeds[i],
          { name: m.name, version: m.version, seq: 0 },
          { ...spec.options, seed: seeds[i] },
        ),
      );
      return;
    }
    const r: GenerationResult = s.value;
    const v = spec.verifier.verify({ response: r.text, answer: spec.answer, prompt: spec.prompt, truncated: r.finishReason === 'length' });
    records.push(recordFromGeneration(ctx, r, v));
    completionTokens += r.usage.completionTokens;
    promptTokens += r.usage.promptTokens;
    prefixHitTokens += r.stats.prefixCacheHitTokens;
  });
  return { records, completionTokens, promptTokens, prefixHitTokens, wallMs: Date.now() - t0 };
}
