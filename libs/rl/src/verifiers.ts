// Reward verifiers: given a model response and a reference answer, decide correctness.
// Pluggable by name through a registry. Built in:
//   exact         final answer after extraction (text after `####`, by default) equals the answer
//   numeric       extracted number within |x - a| <= atol + rtol * |a|
//   regex         a pattern (params.pattern, else the reference answer) matches the response or the extracted answer
//   exact-string  the whole response (cut at stop tokens, trimmed) equals the answer
//   task:<family> the task suite's own verifier (libs/tasks `families[f].verify`)
// A response that hit the length cap (truncated) is always wrong; its extracted answer is still reported.
import { families, familyNames, rawFinalAnswer, type Problem } from '@dllm/tasks';
import { RE2JS } from 're2js';
import { z } from 'zod';

/** What the caller asks for: a verifier name and its parameters (validated by the verifier's schema). */
export const verifierSpecSchema = z.strictObject({
  name: z.string().min(1).max(64),
  params: z.record(z.string(), z.unknown()).optional(),
});
export type VerifierSpec = z.infer<typeof verifierSpecSchema>;

export interface VerifyInput {
  response: string;
  /** The reference answer (required unless the verifier says `needsAnswer: false` and its params carry what it needs). */
  answer?: string | null;
  /** The prompt text (task verifiers build their Problem from it). */
  prompt?: string;
  /** The response hit the generation cap: always judged wrong. */
  truncated?: boolean;
}

export interface VerifyOutcome {
  correct: boolean;
  /** What the verifier compared against the answer (null when nothing could be extracted). */
  extracted: string | null;
  truncated: boolean;
}

export interface Verifier<P = unknown> {
  readonly name: string;
  readonly description: string;
  /** Parameters schema; parse errors become 4xx messages. */
  readonly params: z.ZodType<P>;
  /** True when every prompt must carry a reference answer. */
  needsAnswer(params: P): boolean;
  /**
   * Optional submission-time check of a reference answer (null when the verifier reads none): a
   * reason when it could only be matched vacuously (empty answer, a pattern matching the empty
   * string) or can never be used, else null. Such requests are refused (422) before anything runs.
   */
  checkAnswer?(answer: string | null, params: P): string | null;
  /** Pure: the judgement before the truncation rule is applied. */
  judge(input: { response: string; answer: string | null; prompt: string }, params: P): { correct: boolean; extracted: string | null };
}

/** Stop strings of the task tokenizer: text after them is not part of the answer. */
const STOP_STRINGS = ['<|eos|>', '<|pad|>', '<|endoftext|>', '<|im_end|>'];

export function cutAtStop(text: string): string {
  let out = text;
  for (const s of STOP_STRINGS) {
    const at = out.indexOf(s);
    if (at >= 0) out = out.slice(0, at);
  }
  return out;
}

const NUMBER_RE = /[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+(?:[eE][-+]?\d+)?/g;

/** The last number in a text, commas removed, or null. */
export function lastNumber(text: string): string | null {
  const m = cutAtStop(text).match(NUMBER_RE);
  return m && m.length ? m[m.length - 1].replace(/,/g, '') : null;
}

const extractorSchema = z.enum(['marker', 'last-number', 'marker-or-last-number', 'none']);
type Extractor = z.infer<typeof extractorSchema>;

/** Final answer of a response by the named extractor: `marker` = text after `####` up to the end of its line. */
export function extractAnswer(response: string, how: Extractor): string | null {
  switch (how) {
    case 'marker':
      return rawFinalAnswer(cutAtStop(response));
    case 'last-number':
      return lastNumber(response);
    case 'marker-or-last-number':
      return rawFinalAnswer(cutAtStop(response)) ?? lastNumber(response);
    case 'none': {
      const t = cutAtStop(response).trim();
      return t.length ? t : null;
    }
  }
}

const collapse = (s: string) => s.trim().replace(/\s+/g, ' ');

/** 'empty answer' when the answer is missing or only whitespace (it would compare equal to an empty extraction). */
function emptyAnswer(answer: string | null): string | null {
  return answer !== null && answer.trim() === '' ? 'the reference answer is empty: an empty answer can only be matched vacuously' : null;
}

const exactParams = z.strictObject({
  extract: extractorSchema.default('marker'),
  caseSensitive: z.boolean().default(true),
});
export const exactVerifier: Verifier<z.infer<typeof exactParams>> = {
  name: 'exact',
  description: 'extracted final answer (default: after ####) equals the reference answer (whitespace collapsed)',
  params: exactParams,
  needsAnswer: () => true,
  checkAnswer: (answer) => emptyAnswer(answer),
  judge({ response, answer }, p) {
    const extracted = extractAnswer(response, p.extract);
    if (extracted === null || answer === null) return { correct: false, extracted };
    const a = collapse(answer);
    const x = collapse(extracted);
    return { correct: p.caseSensitive ? a === x : a.toLowerCase() === x.toLowerCase(), extracted };
  },
};

const numericParams = z.strictObject({
  /** Absolute tolerance. */
  tolerance: z.number().min(0).max(1e12).default(1e-6),
  /** Relative tolerance (times |answer|). */
  relTolerance: z.number().min(0).max(1).default(0),
  extract: extractorSchema.default('marker-or-last-number'),
});
function parseNumber(s: string): number | null {
  const t = s.trim().replace(/,/g, '');
  if (!/^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$/.test(t)) return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}
export const numericVerifier: Verifier<z.infer<typeof numericParams>> = {
  name: 'numeric',
  description: 'extracted number x within tolerance of the answer a: |x - a| <= tolerance + relTolerance * |a|',
  params: numericParams,
  needsAnswer: () => true,
  checkAnswer: (answer) =>
    emptyAnswer(answer) ?? (answer !== null && parseNumber(answer) === null ? `the reference answer '${answer.slice(0, 40)}' is not a number` : null),
  judge({ response, answer }, p) {
    const raw = extractAnswer(response, p.extract);
    // "#### 42 apples" still counts: take the first number of the extracted text
    const extracted = raw === null ? null : parseNumber(raw) !== null ? raw.trim().replace(/,/g, '') : (raw.match(NUMBER_RE)?.[0]?.replace(/,/g, '') ?? null);
    if (extracted === null || answer === null) return { correct: false, extracted };
    const a = parseNumber(answer);
    const x = parseNumber(extracted);
    if (a === null || x === null) return { correct: false, extracted };
    return { correct: Math.abs(x - a) <= p.tolerance + p.relTolerance * Math.abs(a), extracted };
  },
};

const regexParams = z.strictObject({
  /** Pattern (RE2 syntax: no backreferences or lookaround); when absent, each prompt's reference answer is the pattern. */
  pattern: z.string().min(1).max(1000).optional(),
  flags: z
    .string()
    .regex(/^[imsu]*$/, 'flags may only use i, m, s, u')
    .default(''),
  /** Match against the whole response (cut at stop tokens) or the extracted final answer. */
  target: z.enum(['response', 'extracted']).default('response'),
  /** With target=extracted: a full match is required (anchored). */
  fullMatch: z.boolean().default(false),
});
type RegexParams = z.infer<typeof regexParams>;

/**
 * User-supplied patterns run on RE2 (re2js: the RE2 automaton, matching time linear in the input,
 * no backtracking), so a pattern such as `^(.*)*Q$` cannot stall the worker. JavaScript flags map
 * to RE2's: i -> CASE_INSENSITIVE, m -> MULTILINE, s -> DOTALL; u is implied (RE2 reads code points).
 * Throws (RE2JSSyntaxException) for syntax RE2 does not support, e.g. backreferences and lookaround.
 */
export function compileUserRegex(source: string, flags: string): RE2JS {
  let f = 0;
  if (flags.includes('i')) f |= RE2JS.CASE_INSENSITIVE;
  if (flags.includes('m')) f |= RE2JS.MULTILINE;
  if (flags.includes('s')) f |= RE2JS.DOTALL;
  return RE2JS.compile(source, f);
}

function effectiveSource(source: string, p: RegexParams): string {
  return p.fullMatch ? `^(?:${source})$` : source;
}

/** Why a pattern cannot serve as a verifier: it does not compile in RE2, or it matches the empty string (every response would be correct). */
function regexProblem(source: string, p: RegexParams): string | null {
  if (source.length === 0) return 'the pattern is empty: it matches every response';
  let re: RE2JS;
  try {
    re = compileUserRegex(effectiveSource(source, p), p.flags);
  } catch (e) {
    return `invalid regular expression (RE2 syntax: no backreferences or lookaround): ${(e as Error).message}`;
  }
  if (re.matcher('').find()) return `the pattern /${source.slice(0, 80)}/ matches the empty string, so every response would be correct`;
  return null;
}

export const regexVerifier: Verifier<RegexParams> = {
  name: 'regex',
  description: 'a regular expression (RE2 syntax; params.pattern or the reference answer) matches the response or the extracted answer',
  params: regexParams.superRefine((p, ctx) => {
    if (p.pattern !== undefined) {
      const problem = regexProblem(p.pattern, p);
      if (problem) ctx.addIssue({ code: 'custom', path: ['pattern'], message: problem });
    }
  }),
  needsAnswer: (p) => p.pattern === undefined,
  checkAnswer: (answer, p) => (p.pattern === undefined && answer !== null ? regexProblem(answer, p) : null),
  judge({ response, answer }, p) {
    const source = p.pattern ?? answer;
    if (source === null || source === undefined) return { correct: false, extracted: null };
    let re: RE2JS;
    try {
      re = compileUserRegex(effectiveSource(source, p), p.flags);
    } catch {
      return { correct: false, extracted: null };
    }
    const text = p.target === 'extracted' ? extractAnswer(response, 'marker') : cutAtStop(response);
    if (text === null) return { correct: false, extracted: null };
    const m = re.matcher(p.target === 'extracted' ? text.trim() : text);
    if (!m.find()) return { correct: false, extracted: p.target === 'extracted' ? text.trim() : null };
    return { correct: true, extracted: (m.groupCount() >= 1 ? m.group(1) : null) ?? m.group(0) };
  },
};

const exactStringParams = z.strictObject({
  caseSensitive: z.boolean().default(true),
  trim: z.boolean().default(true),
});
export const exactStringVerifier: Verifier<z.infer<typeof exactStringParams>> = {
  name: 'exact-string',
  description: 'the whole response (cut at stop tokens) equals the answer',
  params: exactStringParams,
  needsAnswer: () => true,
  checkAnswer: (answer, p) =>
    answer !== null && (p.trim ? answer.trim() : answer) === '' ? 'the reference answer is empty: an empty answer can only be matched vacuously' : null,
  judge({ response, answer }, p) {
    let r = cutAtStop(response);
    let a = answer ?? null;
    if (p.trim) {
      r = r.trim();
      a = a === null ? null : a.trim();
    }
    if (a === null) return { correct: false, extracted: r };
    return { correct: p.caseSensitive ? r === a : r.toLowerCase() === a.toLowerCase(), extracted: r };
  },
};

function taskVerifier(family: string): Verifier<Record<string, never>> {
  const f = families[family];
  return {
    name: `task:${family}`,
    description: `the task suite's ${family} verifier (${f.description})`,
    params: z.strictObject({}) as unknown as z.ZodType<Record<string, never>>,
    needsAnswer: () => true,
    checkAnswer: (answer) => emptyAnswer(answer),
    judge({ response, answer, prompt }) {
      if (answer === null) return { correct: false, extracted: f.extract(response) };
      const problem: Problem = { id: 'rollout', family, prompt, solution: '', answer };
      return f.verify(problem, response);
    },
  };
}

/** A verifier resolved with validated parameters: what rollout code calls per sample. */
export interface BoundVerifier {
  readonly name: string;
  readonly needsAnswer: boolean;
  /** Submission-time check of a prompt's reference answer: a reason to refuse it (vacuous or unusable), or null. */
  checkAnswer(answer: string | null): string | null;
  verify(input: VerifyInput): VerifyOutcome;
}

export class VerifierError extends RangeError {}

export class VerifierRegistry {
  private readonly verifiers = new Map<string, Verifier<any>>();

  register(v: Verifier<any>): this {
    if (typeof v.name !== 'string' || !/^[a-z][a-z0-9-]*$/.test(v.name))
      throw new VerifierError(`verifier name '${v.name}' must be lower-case letters, digits and dashes`);
    if (this.verifiers.has(v.name)) throw new VerifierError(`verifier '${v.name}' is already registered`);
    this.verifiers.set(v.name, v);
    return this;
  }

  /** Names callers may use (task:<family> included). */
  names(): string[] {
    return [...this.verifiers.keys(), ...familyNames().map((f) => `task:${f}`)];
  }

  has(name: string): boolean {
    return this.lookup(name) !== undefined;
  }

  private lookup(name: string): Verifier<any> | undefined {
    if (name.startsWith('task:')) {
      const fam = name.slice(5);
      return Object.prototype.hasOwnProperty.call(families, fam) ? taskVerifier(fam) : undefined;
    }
    return this.verifiers.get(name);
  }

  /** Validates the spec (unknown name, bad params: VerifierError with a readable message) and binds it. */
  bind(spec: VerifierSpec | string): BoundVerifier {
    const s: VerifierSpec = typeof spec === 'string' ? { name: spec } : spec;
    const v = this.lookup(s.name);
    if (!v) throw new VerifierError(`unknown verifier '${s.name}' (known: ${this.names().join(', ')})`);
    const parsed = v.params.safeParse(s.params ?? {});
    if (!parsed.success) {
      const msg = parsed.error.issues.map((i) => `${i.path.join('.') || '(params)'}: ${i.message}`).join('; ');
      throw new VerifierError(`verifier '${s.name}': invalid params: ${msg}`);
    }
    const params = parsed.data;
    const needsAnswer = v.needsAnswer(params);
    return {
      name: s.name,
      needsAnswer,
      checkAnswer: (answer) => v.checkAnswer?.(answer, params) ?? null,
      verify(input: VerifyInput): VerifyOutcome {
        if (typeof input.response !== 'string') throw new VerifierError('response must be a string');
        const answer = input.answer ?? null;
        if (needsAnswer && answer === null) throw new VerifierError(`verifier '${s.name}' needs a reference answer`);
        const j = v.judge({ response: input.response, answer, prompt: input.prompt ?? '' }, params);
        const truncated = input.truncated === true;
        return { correct: j.correct && !truncated, extracted: j.extracted, truncated };
      },
    };
  }
}

/** The registry with the built-in verifiers. Add your own with `createVerifierRegistry().register(...)`. */
export function createVerifierRegistry(): VerifierRegistry {
  return new VerifierRegistry().register(exactVerifier).register(numericVerifier).register(regexVerifier).register(exactStringVerifier);
}

export const verifiers = createVerifierRegistry();
