// Per-request decoding options: one zod schema, every knob with its range and default. Owned by the
// contracts (the gateway validates with it without loading the engine); the engine imports it.
// `policy` and `blockSize` default from the model (see resolveDecodeOptions): a block-diffusion
// model decodes with fast-dllm-v2 in its trained block size, an autoregressive one with `ar`. A model's
// manifest may also set its own defaults for the decoding knobs (decode_defaults: resolve.ts
// modelDecodeDefaults); the defaults below apply where neither the request nor the model sets one.
import { z } from 'zod';

export const POLICIES = ['ar', 'fast-dllm-v2', 'entropy', 'adablock'] as const;
export type PolicyName = (typeof POLICIES)[number];

/** Sub-block length used when neither the request nor the model's decode_defaults sets one (tokens). */
export const DEFAULT_SUB_BLOCK_SIZE = 8;

export const decodeOptionsSchema = z.strictObject({
  /** Decoding policy. Default: 'fast-dllm-v2' for block-diffusion models, 'ar' for autoregressive ones. */
  policy: z.enum(POLICIES).optional(),
  /** Block length in tokens (blocks are aligned to absolute positions). Default: the model's block_size (32). */
  blockSize: z.number().int().min(1).max(256).optional(),
  /** Sub-block length: the window part decoded left to right inside a block. 1..blockSize. Default: the model's decode_defaults.sub_block_size, else 8. */
  subBlockSize: z.number().int().min(1).max(256).default(DEFAULT_SUB_BLOCK_SIZE),
  /** fast-dllm-v2 / adablock: commit every masked slot of the sub-block whose probability > threshold (at least one per step). 1 = one token per step. */
  threshold: z.number().gt(0).max(1).default(0.9),
  /** entropy policy (dParallel): commit every masked slot whose entropy (nats) <= entropyThreshold (at least one per step). */
  entropyThreshold: z.number().min(0).max(20).default(0.5),
  /** adablock: a block ends after the most confident predicted delimiter if its confidence >= delimiterThreshold. */
  delimiterThreshold: z.number().min(0).max(1).default(0.3),
  /**
   * Sub-block cache (Fast-dLLM v2): a block's first step runs the whole window and keeps its K/V; every
   * later step runs only the active sub-block (and the slots before it whose token changed) against it.
   * Default true (held-out accuracy within 0.4 points of full windows at 0.65-0.8x the FLOPs: docs/ENGINE.md);
   * false = every step recomputes the whole block window.
   */
  subBlockCache: z.boolean().default(true),
  /** Generation cap (tokens after the prompt). */
  maxNewTokens: z.number().int().min(1).max(8192).default(256),
  /** 0 = greedy (argmax). > 0 samples from softmax(logits / temperature). */
  temperature: z.number().min(0).max(10).default(0),
  /** Keep only the k most likely tokens before sampling; 0 = off. */
  topK: z.number().int().min(0).max(1_000_000).default(0),
  /** Nucleus sampling: keep the smallest set of tokens whose probability mass >= topP; 1 = off. */
  topP: z.number().gt(0).max(1).default(1),
  /** PRNG seed for sampling. Same seed + options + prompt + model version -> same tokens. Default: drawn at random (recorded in the trajectory). */
  seed: z.number().int().min(0).max(0xffffffff).optional(),
  /** Stop strings: generation ends at the first occurrence; the text is cut before it. */
  stop: z.array(z.string().min(1).max(128)).max(16).default([]),
  /** Extra stop token ids (the model's EOS always stops). */
  stopTokenIds: z.array(z.number().int().min(0)).max(64).default([]),
  /** Record the decoding trajectory (step map, confidences, entropies, log-probs, block boundaries). */
  trajectory: z.boolean().default(false),
});

export type DecodeOptions = z.infer<typeof decodeOptionsSchema>;

/** Options after model defaults are applied: every field present. */
export type ResolvedOptions = Omit<DecodeOptions, 'policy' | 'blockSize' | 'seed'> & {
  policy: PolicyName;
  blockSize: number;
  seed: number;
};
