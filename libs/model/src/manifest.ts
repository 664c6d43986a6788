// dllm.json: the manifest of a dllm-farm model directory (docs/MODEL_FORMAT.md).
import { z } from 'zod';

/**
 * The format this code writes and the engine reads (docs/MODEL_FORMAT.md).
 * v2 (2026-11-30): the graph takes `logit_index` and `banned_token_ids`, returns logits only for the
 * selected positions, plus argmax / max_prob / log_sum_exp / entropy computed in the graph.
 * v1: logits for every position. v1 directories are still parsed (so `dllm-farm export` can read
 * them back out for a rebuild), but `loadModelDir` refuses them unless asked (`allowOlderFormat`).
 */
export const MODEL_FORMAT = 'dllm-farm/v2';
/** Every format a manifest may name, oldest first. */
export const MODEL_FORMATS = ['dllm-farm/v1', 'dllm-farm/v2'] as const;
export type ModelFormat = (typeof MODEL_FORMATS)[number];

/** Graph I/O names; fixed by the contract, recorded so a reader can check them. */
export const GRAPH_IO = {
  inputs: {
    inputIds: 'input_ids',
    positionIds: 'position_ids',
    attentionMask: 'attention_mask',
    logitIndex: 'logit_index',
    bannedTokenIds: 'banned_token_ids',
    pastKey: 'past_key.',
    pastValue: 'past_value.',
  },
  outputs: {
    logits: 'logits',
    argmax: 'argmax',
    maxProb: 'max_prob',
    logSumExp: 'log_sum_exp',
    entropy: 'entropy',
    presentKey: 'present_key.',
    presentValue: 'present_value.',
  },
} as const;

/** The names of layer `i`'s KV-cache inputs (past_*) and outputs (present_*). */
export function layerIoNames(i: number): { pastKey: string; pastValue: string; presentKey: string; presentValue: string } {
  const { inputs, outputs } = GRAPH_IO;
  return {
    pastKey: `${inputs.pastKey}${i}`,
    pastValue: `${inputs.pastValue}${i}`,
    presentKey: `${outputs.presentKey}${i}`,
    presentValue: `${outputs.presentValue}${i}`,
  };
}

/** The graph's input names for a model with `numLayers` layers in format `format`, in order. */
export function graphInputNames(numLayers: number, format: ModelFormat = MODEL_FORMAT): string[] {
  const { inputIds, positionIds, attentionMask, logitIndex, bannedTokenIds } = GRAPH_IO.inputs;
  const out: string[] = [inputIds, positionIds, attentionMask];
  if (format !== 'dllm-farm/v1') out.push(logitIndex, bannedTokenIds);
  for (let i = 0; i < numLayers; i++) out.push(layerIoNames(i).pastKey, layerIoNames(i).pastValue);
  return out;
}

/** The graph's output names for a model with `numLayers` layers in format `format`, in order. */
export function graphOutputNames(numLayers: number, format: ModelFormat = MODEL_FORMAT): string[] {
  const { logits, argmax, maxProb, logSumExp, entropy } = GRAPH_IO.outputs;
  const out: string[] = [logits];
  if (format !== 'dllm-farm/v1') out.push(argmax, maxProb, logSumExp, entropy);
  for (let i = 0; i < numLayers; i++) out.push(layerIoNames(i).presentKey, layerIoNames(i).presentValue);
  return out;
}

const posInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative();

export const ArchitectureSchema = z.object({
  type: z.literal('qwen2'),
  hidden_size: posInt,
  intermediate_size: posInt,
  num_layers: posInt,
  num_attention_heads: posInt,
  num_key_value_heads: posInt,
  head_dim: posInt,
  rms_norm_eps: z.number().positive(),
  rope_theta: z.number().positive(),
  max_position_embeddings: posInt,
  tie_word_embeddings: z.boolean(),
  /** q/k/v projections carry a bias (Qwen2 does). Informational; the graph has them baked in. */
  attention_bias: z.boolean().optional(),
});
export type Architecture = z.infer<typeof ArchitectureSchema>;

/** Owned by libs/quant: the core fields are checked here, extra keys (kernel, accuracy_level...) pass through. */
export const QuantizationSchema = z.looseObject({
  scheme: z.enum(['int8', 'int4', 'int3']),
  bits: posInt,
  /** K values per scale; null for per-output-channel int8. */
  group_size: posInt.nullable(),
  method: z.string().min(1),
  /** linear-layer weights left in float32. */
  kept_fp32: z.array(z.string()),
});
export type Quantization = z.infer<typeof QuantizationSchema>;

export const ManifestSchema = z
  .object({
    format: z.enum(MODEL_FORMATS, { error: (i) => `unknown model format ${JSON.stringify(i.input)} (this version reads ${MODEL_FORMATS.join(', ')})` }),
    name: z.string().min(1),
    /** Part of the KV pool key: change it whenever the weights change. */
    version: z.string().min(1),
    kind: z.enum(['block-diffusion', 'autoregressive']),
    architecture: ArchitectureSchema,
    vocab_size: posInt,
    tokens: z.object({ mask: tokenId, eos: tokenId, pad: tokenId, bos: tokenId.optional() }),
    block_size: posInt,
    dtype: z.literal('float32'),
    /** Token ids that end an AdaBlock block (newline, punctuation). */
    delimiter_token_ids: z.array(tokenId).optional(),
    /**
     * The model's own decoding defaults, like Hugging Face's generation_config.json: used for every
     * option a request leaves unset (a request's value always wins). Keys are the HTTP API's wire
     * names; ranges and combinations are checked by @dllm/contracts (modelDecodeDefaults) when the
     * model is loaded. Omitted: the engine-wide defaults (docs/MODEL_FORMAT.md).
     */
    decode_defaults: z
      .strictObject({
        policy: z.string().min(1).optional(),
        sub_block_size: posInt.optional(),
        threshold: z.number().optional(),
        entropy_threshold: z.number().optional(),
        delimiter_threshold: z.number().optional(),
        sub_block_cache: z.boolean().optional(),
      })
      .optional(),
    /** Weight-only quantization, written by libs/quant (docs/QUANTIZATION.md); null for a float model. */
    quantization: QuantizationSchema.nullable().optional(),
    graph: z
      .object({
        inputs: z.array(z.string()),
        outputs: z.array(z.string()),
        external_data: z.string().nullable().optional(),
      })
      .optional(),
  })
  .superRefine((m, ctx) => {
    const a = m.architecture;
    if (a.num_attention_heads % a.num_key_value_heads !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['architecture', 'num_key_value_heads'],
        message: `num_attention_heads (${a.num_attention_heads}) must be a multiple of num_key_value_heads (${a.num_key_value_heads})`,
      });
    }
    for (const k of ['mask', 'eos', 'pad', 'bos'] as const) {
      const id = m.tokens[k];
      if (id !== undefined && id >= m.vocab_size)
        ctx.addIssue({ code: 'custom', path: ['tokens', k], message: `${k} token id ${id} is outside the vocabulary (vocab_size ${m.vocab_size})` });
    }
    for (const [i, id] of (m.delimiter_token_ids ?? []).entries()) {
      if (id >= m.vocab_size)
        ctx.addIssue({
          code: 'custom',
          path: ['delimiter_token_ids', i],
          message: `delimiter token id ${id} is outside the vocabulary (vocab_size ${m.vocab_size})`,
        });
    }
  });
export type Manifest = z.infer<typeof ManifestSchema>;

/**
 * The manifest fields a decoder reads (the engine's view of a model). Every Manifest is one; a test
 * runner that is not a Qwen2 graph (the engine's counting model) builds just these.
 */
export interface DecodeManifest {
  name: string;
  version: string;
  kind: Manifest['kind'] | (string & {});
  block_size: number;
  /** rows of the LM head; token ids must be below it (optional: hand-built test manifests may omit it). */
  vocab_size?: number;
  tokens: Manifest['tokens'];
  delimiter_token_ids?: number[];
  /** The model's decoding defaults (Manifest['decode_defaults']). */
  decode_defaults?: Manifest['decode_defaults'];
  /** only max_position_embeddings is read (the longest sequence the model takes). */
  architecture?: Partial<Architecture>;
}

/** Readable one-line-per-problem text for a failed parse. */
export function formatZodError(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

/** Validates a manifest object; throws an Error naming every problem. */
export function parseManifest(raw: unknown, where = 'dllm.json'): Manifest {
  const r = ManifestSchema.safeParse(raw);
  if (!r.success) throw new Error(`${where}: invalid manifest: ${formatZodError(r.error)}`);
  return r.data;
}
