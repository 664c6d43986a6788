// Distillation jobs (dParallel-style self-distillation): the teacher decodes every question with a
// safe configuration (AR order, or threshold 1.0 = one token per step) and the job writes a dataset
// in the layout tools/train reads: <family>-train.jsonl rows {id, family, split, prompt, solution,
// answer} (solution = the teacher's response; the trainer appends EOS), tokenizer.json, and
// distill.json (teacher, decoding, counts, and the certainty-forcing masking parameters; see
// docs/DISTILL.md). One job per request in dllm.distill.<model>; the dataset streams to storage
// as it is produced; progress after every chunk.
import { decodeOptionsSchema } from '../decode/options';
import { verifierSpecSchema, verifiers, VerifierError } from '@dllm/rl';
import { familyNames } from '@dllm/tasks';
import { z } from 'zod';
import { defineJob } from '../define-job';
import { jobWorkSchema } from '../work';

export const DISTILL_LIMITS = Object.freeze({ maxQuestions: 100_000, maxInline: 10_000, maxPromptChars: 20_000 });

const idRe = /^[A-Za-z0-9_.-]{1,128}$/;

export const distillQuestionSchema = z.strictObject({
  id: z.string().regex(idRe, 'letters, digits, . _ - (1-128 chars)').optional(),
  prompt: z.string().min(1).max(DISTILL_LIMITS.maxPromptChars),
  answer: z.string().max(10_000).optional(),
  /** Dataset file the row goes to (<family>-train.jsonl); default 'custom'. */
  family: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,31}$/)
    .optional(),
});

/** Questions from the task suite: the first n problems of a family's split from a seeded stream. */
export const distillTaskSourceSchema = z.strictObject({
  family: z.string().refine((f) => familyNames().includes(f), { message: `unknown task family (known: ${familyNames().join(', ')})` }),
  split: z.enum(['train', 'test']).default('train'),
  seed: z.number().int().min(0).max(1_000_000).default(0),
  n: z.number().int().min(1).max(DISTILL_LIMITS.maxQuestions),
});

/** Certainty-forcing trainer masking parameters (dParallel), recorded in distill.json. */
export const certaintyForcingSchema = z.strictObject({
  /** Block length of the mask schedule (the model's block size by default). */
  blockSize: z.number().int().min(1).max(256).optional(),
  /** Inside the chosen block k, each token is masked with this probability (earlier blocks clean, later ones fully masked). */
  maskProb: z.number().gt(0).lt(1).default(0.5),
  /** Also train on the complementary mask (every token supervised once). */
  complementary: z.boolean().default(true),
  /** lambda: weight of the entropy term on masked positions the model already predicts correctly. */
  entropyWeight: z.number().min(0).max(10).default(1),
  /** Temperature of the softmax inside the entropy term. */
  entropyTemperature: z.number().gt(0).max(10).default(0.5),
});

export const distillRequestSchema = z
  .strictObject({
    model: z.string().min(1).max(64),
    tasks: z.array(distillTaskSourceSchema).max(8).optional(),
    questions: z.array(distillQuestionSchema).max(DISTILL_LIMITS.maxInline).optional(),
    /**
     * Teacher decoding (engine options). Default: greedy, threshold 1.0 (one token per step).
     * Anything else than policy 'ar' or threshold 1.0 needs allowFastTeacher: the teacher should be the slow, safe decoder.
     */
    decoding: z.record(z.string(), z.unknown()).default({}),
    allowFastTeacher: z.boolean().default(false),
    /** Keep only responses the verifier accepts (needs answers). Default true. */
    onlyCorrect: z.boolean().default(true),
    /** Verifier for inline questions with answers (task questions use their family's verifier). */
    verifier: verifierSpecSchema.default({ name: 'exact' }),
    /** Also record per-token step map / confidence / entropy of the teacher. */
    record: z
      .strictObject({ stepMap: z.boolean().default(false), confidence: z.boolean().default(false), entropy: z.boolean().default(false) })
      .default({ stepMap: false, confidence: false, entropy: false }),
    trainer: certaintyForcingSchema.default({ maskProb: 0.5, complementary: true, entropyWeight: 1, entropyTemperature: 0.5 }),
    /** Questions decoded concurrently (batched by the engine). */
    concurrency: z.number().int().min(1).max(64).default(8),
  })
  .superRefine((r, ctx) => {
    const n = (r.tasks ?? []).reduce((a, t) => a + t.n, 0) + (r.questions?.length ?? 0);
    if (n === 0) ctx.addIssue({ code: 'custom', path: ['questions'], message: 'give tasks and/or questions (no question to distill)' });
    if (n > DISTILL_LIMITS.maxQuestions)
      ctx.addIssue({ code: 'custom', path: ['tasks'], message: `${n} questions, more than the limit of ${DISTILL_LIMITS.maxQuestions}` });
    const d = decodeOptionsSchema.safeParse(r.decoding);
    if (!d.success) for (const i of d.error.issues) ctx.addIssue({ code: 'custom', message: i.message, path: ['decoding', ...(i.path as PropertyKey[])] });
    else {
      const safe = d.data.policy === 'ar' || r.decoding.threshold === undefined || d.data.threshold === 1;
      if (!safe && !r.allowFastTeacher)
        ctx.addIssue({
          code: 'custom',
          path: ['decoding', 'threshold'],
          message: 'the teacher decodes with policy ar or threshold 1.0; set allowFastTeacher to distill from a faster configuration',
        });
    }
    try {
      const v = verifiers.bind(r.verifier);
      if (r.onlyCorrect && v.needsAnswer)
        r.questions?.forEach(
          (q, i) =>
            q.answer === undefined &&
            ctx.addIssue({
              code: 'custom',
              path: ['questions', i, 'answer'],
              message: 'onlyCorrect needs a reference answer for every question (or set onlyCorrect: false)',
            }),
        );
    } catch (e) {
      if (!(e instanceof VerifierError)) throw e;
      ctx.addIssue({ code: 'custom', path: ['verifier'], message: e.message });
    }
  });
export type DistillRequest = z.output<typeof distillRequestSchema>;

export const distillPayloadSchema = z.strictObject({
  distillId: z.string().regex(idRe),
  owner: z.string().min(1).max(128),
  model: z.string().min(1).max(64),
  requestKey: z.string().min(1),
  total: z.number().int().min(1),
  createdAt: z.number().int().min(0),
  /** Every question once, for the pending-work gauge (progress.done tells how much is left). */
  work: jobWorkSchema.optional(),
});
export type DistillPayload = z.output<typeof distillPayloadSchema>;

export const distillProgressSchema = z.object({ done: z.number().int(), total: z.number().int(), kept: z.number().int() });
export type DistillProgress = z.output<typeof distillProgressSchema>;

export const distillReturnSchema = z.object({
  /** Dataset files: name -> blob key (under distill/<id>/). */
  files: z.record(z.string(), z.string()),
  total: z.number().int(),
  kept: z.number().int(),
  dropped: z.object({ incorrect: z.number().int(), truncated: z.number().int(), failed: z.number().int() }),
  /** The version served when the job started. */
  teacher: z.object({ name: z.string(), version: z.string() }),
  /**
   * Kept rows per teacher version that decoded them. More than one key means the served model was
   * hot-swapped mid-job (e.g. an RL learner registered a version of the same model): each row's
   * `teacher.version` says which one made it.
   */
  teacherVersions: z.record(z.string(), z.number().int()),
  tokens: z.number().int(),
  meanTpf: z.number(),
  wallMs: z.number(),
});
export type DistillReturn = z.output<typeof distillReturnSchema>;

/**
 * The failed reason of a distill job stopped by POST /v1/distill/:id/cancel (the worker fails it
 * with this, without retries; the gateway reports it as status `cancelled`).
 */
export const DISTILL_CANCELLED = 'distillation cancelled';

export const distillBlobKey = (id: string, file: string) => `distill/${id}/${file}`;

export const distillJob = defineJob({
  kind: 'distill',
  name: 'distill',
  perModel: true,
  payload: distillPayloadSchema,
  result: distillReturnSchema,
  defaults: { attempts: 2, backoff: { type: 'exponential', delay: 1000 } },
});
