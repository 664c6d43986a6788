// The one request resolver shared by the gateway (decides 4xx before anything is queued) and the
// worker/engine (the same verdict, as a backstop when a model changed in between). A plain function
// of the model's manifest facts and the request: no ORT, no Redis, no Nest. Everything the engine
// would reject for a request is decided here: option ranges and combinations, policies the model's
// kind cannot run, token ids outside the vocabulary, empty prompts and prompts longer than the
// model's positions (counted with the model's own tokenizer).
import { DLLM_EXTRA_TO_ENGINE, ENGINE_TO_WIRE } from '../openai/common';
import { DEFAULT_SUB_BLOCK_SIZE, decodeOptionsSchema, type DecodeOptions, type PolicyName, type ResolvedOptions } from './options';

/** What the resolver needs to know about a model (read from its directory's dllm.json + tokenizer.json). */
export interface ModelFacts {
  /** Model name (messages only). */
  name: string;
  /** Manifest `kind`: 'block-diffusion' | 'autoregressive'. */
  kind: string;
  /** Manifest `block_size` (tokens): the default block length. */
  blockSize: number;
  /** Manifest `architecture.max_position_embeddings`; undefined when unknown (no limit checked). */
  maxPositions?: number;
  /** Manifest `vocab_size`; undefined when unknown (token ids are not range-checked). */
  vocabSize?: number;
  /** The model's tokenizer (text -> ids, no special tokens added); undefined: prompts are checked as text only. */
  tokenizer?: { encode(text: string): number[] };
  /**
   * The model's decoding defaults (manifest `decode_defaults`, through modelDecodeDefaults): applied to
   * every option a request leaves unset, before the engine-wide defaults. undefined: none.
   */
  decodeDefaults?: Partial<DecodeOptions>;
}

/** Manifest `decode_defaults` keys: the HTTP API's wire names (DLLM_EXTRA_TO_ENGINE) of the knobs a model may default. */
export const MODEL_DECODE_DEFAULT_KEYS = ['policy', 'sub_block_size', 'threshold', 'entropy_threshold', 'delimiter_threshold', 'sub_block_cache'] as const;
type ModelDecodeDefaultKey = (typeof MODEL_DECODE_DEFAULT_KEYS)[number];

/**
 * A model's `decode_defaults` (manifest, wire names) as engine options, checked with the same schema
 * as a request's options: the analogue of Hugging Face's generation_config.json. Only the keys the
 * manifest sets are returned.
 * @param raw the manifest's `decode_defaults` (undefined/null: none)
 * @param kind the manifest's kind: an autoregressive model may only default to policy 'ar'
 * @param where prefix for error messages (e.g. 'models/tiny-dllm/dllm.json')
 * @throws RangeError naming every bad key and value (`<where>: decode_defaults.<key>: <problem>`)
 */
export function modelDecodeDefaults(raw: Record<string, unknown> | null | undefined, kind: string, where = 'dllm.json'): Partial<DecodeOptions> {
  if (raw === undefined || raw === null) return {};
  const mapped: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (!(MODEL_DECODE_DEFAULT_KEYS as readonly string[]).includes(k))
      problems.push(`decode_defaults.${k}: not a decoding default (allowed: ${MODEL_DECODE_DEFAULT_KEYS.join(', ')})`);
    else if (v !== undefined) mapped[DLLM_EXTRA_TO_ENGINE[k as ModelDecodeDefaultKey]] = v;
  }
  // The request schema checks them (it has no transforms, so the values are returned as given).
  const parsed = decodeOptionsSchema.safeParse(mapped);
  if (!parsed.success) {
    for (const i of parsed.error.issues) problems.push(`decode_defaults.${ENGINE_TO_WIRE[String(i.path[0])] ?? i.path.join('.')}: ${i.message}`);
  }
  if (kind === 'autoregressive' && mapped.policy !== undefined && mapped.policy !== 'ar')
    problems.push(`decode_defaults.policy: an autoregressive model decodes with 'ar', got '${String(mapped.policy)}'`);
  if (problems.length) throw new RangeError(`${where}: ${problems.join('; ')}`);
  return mapped as Partial<DecodeOptions>;
}

/**
 * One reason a request is refused. `param` names the field as the resolver sees it: `prompt`,
 * `promptIds[i]`, or `options.<engine key>` (callers map it to their wire name, e.g. block_size).
 * `status` is the HTTP status the gateway answers: 400 for the prompt, 422 for options.
 */
export interface RequestIssue {
  param: string;
  message: string;
  code: 'invalid_value' | 'unsupported_option' | 'empty_prompt' | 'context_length_exceeded' | 'invalid_token_id';
  status: 400 | 422;
}

export type OptionsResolution = { ok: true; options: ResolvedOptions } | { ok: false; errors: RequestIssue[] };

/**
 * Validates client-set decoding options against the schema and against the model, and applies the
 * model's defaults. Never throws for bad input: returns every problem found.
 * @param input options as the client set them (engine camelCase keys), or undefined
 * @param model the model's facts (kind, block size, vocabulary)
 * @param randomSeed draws the seed when the request sets none
 */
export function resolveDecodeOptions(input: unknown, model: ModelFacts, randomSeed: () => number): OptionsResolution {
  const set = (input ?? {}) as Record<string, unknown>;
  const defaults = model.decodeDefaults ?? {};
  // The model's defaults fill what the request leaves unset (undefined counts as unset); a request's value wins.
  const isObject = typeof input === 'object' && !Array.isArray(input); // null included: no options
  const merged = input === undefined || isObject ? { ...defaults, ...dropUndefined(set) } : input;
  const parsed = decodeOptionsSchema.safeParse(merged);
  if (!parsed.success) {
    return {
      ok: false,
      errors: parsed.error.issues.map((i) => ({ param: ['options', ...i.path.map(String)].join('.'), message: i.message, code: 'invalid_value', status: 422 })),
    };
  }
  const o = parsed.data;
  const errors: RequestIssue[] = [];
  const policy: PolicyName = o.policy ?? (model.kind === 'autoregressive' ? 'ar' : 'fast-dllm-v2');
  if (model.kind === 'autoregressive' && policy !== 'ar') {
    errors.push({
      param: 'options.policy',
      message: `policy '${policy}' needs a block-diffusion model; ${model.name} is autoregressive (use policy 'ar')`,
      code: 'unsupported_option',
      status: 422,
    });
  }
  const blockSize = o.blockSize ?? model.blockSize;
  // A model's default sub-block (often 'the whole block') follows a shorter block the request asks for.
  if (set.subBlockSize === undefined && defaults.subBlockSize !== undefined && o.subBlockSize > blockSize) o.subBlockSize = blockSize;
  if (o.subBlockSize > blockSize) {
    // Point at the field the client set: a block_size below the default sub-block is the usual case.
    const subSet = set.subBlockSize !== undefined;
    errors.push({
      param: subSet || o.blockSize === undefined ? 'options.subBlockSize' : 'options.blockSize',
      message: subSet
        ? `subBlockSize (${o.subBlockSize}) must be <= blockSize (${blockSize})`
        : `blockSize ${blockSize} is smaller than the default subBlockSize (${DEFAULT_SUB_BLOCK_SIZE}); use blockSize >= ${DEFAULT_SUB_BLOCK_SIZE} or set subBlockSize <= ${blockSize}`,
      code: 'invalid_value',
      status: 422,
    });
  }
  if (model.vocabSize !== undefined) {
    o.stopTokenIds.forEach((t, i) => {
      if (t >= model.vocabSize!) {
        errors.push({
          param: `options.stopTokenIds.${i}`,
          message: `token id ${t} is outside the vocabulary of ${model.name} (size ${model.vocabSize})`,
          code: 'invalid_token_id',
          status: 422,
        });
      }
    });
  }
  if (errors.length) return { ok: false, errors };
  return { ok: true, options: { ...o, policy, blockSize, seed: o.seed ?? randomSeed() } };
}

export interface ResolveRequestInput {
  /** Prompt text (tokenized with the model's tokenizer when the facts have one). */
  prompt?: string;
  /** Or prompt token ids. */
  promptIds?: readonly number[];
  /** Client-set decoding options (engine camelCase keys). */
  options?: unknown;
}

export type RequestResolution =
  | { ok: true; options: ResolvedOptions; /** prompt length in tokens, when it could be counted */ promptTokens?: number; promptIds?: number[] }
  | { ok: false; errors: RequestIssue[] };

/**
 * The whole verdict on one generation request for one model: the options (resolveDecodeOptions)
 * and the prompt (not empty, fewer tokens than the model's positions, ids inside the vocabulary).
 * Tokenizes text prompts once when the facts carry a tokenizer; the ids are returned for reuse.
 */
export function resolveRequest(model: ModelFacts, req: ResolveRequestInput, randomSeed: () => number = () => 0): RequestResolution {
  const errors: RequestIssue[] = [];
  const opts = resolveDecodeOptions(req.options, model, randomSeed);
  if (!opts.ok) errors.push(...opts.errors);
  let ids: number[] | undefined;
  if (req.promptIds !== undefined) {
    ids = [...req.promptIds];
    ids.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0 || (model.vocabSize !== undefined && t >= model.vocabSize)) {
        errors.push({
          param: `promptIds.${i}`,
          message: `prompt token id ${t} is outside the vocabulary of ${model.name} (size ${model.vocabSize ?? 'unknown'})`,
          code: 'invalid_token_id',
          status: 400,
        });
      }
    });
  } else if (typeof req.prompt === 'string' && model.tokenizer) {
    ids = model.tokenizer.encode(req.prompt);
  }
  const count = ids?.length;
  const empty = count !== undefined ? count === 0 : req.prompt === '' || req.prompt === undefined;
  if (empty) {
    errors.push({ param: 'prompt', message: 'The prompt is empty: at least one prompt token is needed.', code: 'empty_prompt', status: 400 });
  } else if (count !== undefined && model.maxPositions !== undefined && count >= model.maxPositions) {
    errors.push({
      param: 'prompt',
      message: `The prompt has ${count} tokens; ${model.name} handles at most ${model.maxPositions} positions (max_position_embeddings), so at most ${model.maxPositions - 1} prompt tokens.`,
      code: 'context_length_exceeded',
      status: 400,
    });
  }
  if (errors.length || !opts.ok) return { ok: false, errors };
  return { ok: true, options: opts.options, promptTokens: count, promptIds: ids };
}

/** "param: message; param: message" for logs and non-HTTP callers. */
export function describeIssues(errors: readonly RequestIssue[]): string {
  return errors.map((e) => `${e.param}: ${e.message}`).join('; ');
}

/**
 * Facts for a model whose directory cannot be read (no MODELS dir, or unreadable): only what does
 * not depend on the model is checked (option ranges, sub-block vs an explicit block size, empty
 * text prompts); the worker's resolver run decides the rest.
 */
export function unknownModelFacts(name: string): ModelFacts {
  return { name, kind: 'unknown', blockSize: Number.POSITIVE_INFINITY };
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}
