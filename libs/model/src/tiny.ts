// buildTinyModel: a complete, valid model directory from hand-picked or seeded weights, for tests.
//
// Weights are resolved per Hugging Face name (see expectedWeights in builder.ts), in this order:
//   1. `weights` (a partial map name -> Float32Array, or a function (name, shape) -> array|undefined),
//   2. with `seed`: deterministic pseudo-random values (uniform, +-1/sqrt(fan_in); embeddings +-1),
//   3. otherwise the "identity" default: RMSNorm weights 1, everything else 0.
// Norm weights always default to 1 (also with a seed). Example, logits that depend only on the
// input token (attention and MLP zeroed, so each layer is the identity on the residual stream):
//   buildTinyModel(dir, { config: { vocab_size: 16, hidden_size: 16 }, weights: {
//     'model.embed_tokens.weight': eye(16), 'lm_head.weight': eye(16) } })
// gives logits[s] = rmsnorm(onehot(input_ids[s])) = 4 * onehot (for hidden 16).
import * as fs from 'node:fs';
import { mulberry32 } from '@dllm/prng';
import * as path from 'node:path';
import { buildDecoderOnnx, expectedWeights, type AttentionImpl, type LinearEmitter } from './builder';
import { MODEL_FORMAT, graphInputNames, graphOutputNames, parseManifest, type Architecture, type Manifest } from './manifest';
import { MANIFEST_FILE, ONNX_FILE, TOKENIZER_FILE } from './model-dir';
import { charTokenizerJson } from './tokenizer';

export interface TinyConfig extends Partial<Omit<Architecture, 'type'>> {
  vocab_size?: number;
}

export type TinyWeights = Record<string, Float32Array> | ((name: string, shape: number[]) => Float32Array | undefined);

export interface TinyModelOptions {
  config?: TinyConfig;
  weights?: TinyWeights;
  seed?: number;
  /** tokenizer.json content; default: a character tokenizer over printable ASCII (4 specials + 95 chars), padded to vocab_size. */
  tokenizer?: Record<string, unknown>;
  /** merged over the generated manifest (tokens, block_size, kind, name, version...). */
  manifest?: Partial<Manifest>;
  attention?: AttentionImpl;
  linear?: LinearEmitter;
  fuseLinears?: boolean;
}

/** Default tiny architecture: hidden 32, 2 layers, 4 heads / 2 kv heads, head_dim 8, vocab 128. */
export const TINY_DEFAULTS: Required<TinyConfig> = {
  vocab_size: 128,
  hidden_size: 32,
  intermediate_size: 64,
  num_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  max_position_embeddings: 512,
  tie_word_embeddings: false,
  attention_bias: true,
};

/** Resolves every weight of the architecture as described in the file comment. */
export function tinyWeights(arch: Architecture, vocabSize: number, weights?: TinyWeights, seed?: number): Record<string, Float32Array> {
  const rnd = seed === undefined ? null : mulberry32(seed);
  const out: Record<string, Float32Array> = {};
  for (const e of expectedWeights(arch, vocabSize)) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const given = typeof weights === 'function' ? weights(e.name, e.shape) : weights?.[e.name];
    let w: Float32Array;
    if (given) {
      if (given.length !== n) throw new Error(`buildTinyModel: ${e.name} has ${given.length} values, expected shape [${e.shape.join(', ')}]`);
      w = given;
    } else if (e.name.endsWith('norm.weight')) {
      w = new Float32Array(n).fill(1);
    } else if (rnd) {
      const bound = e.name.includes('embed_tokens') ? 1 : 1 / Math.sqrt(e.shape[e.shape.length - 1]);
      w = new Float32Array(n);
      for (let i = 0; i < n; i++) w[i] = (rnd() * 2 - 1) * bound;
    } else {
      w = new Float32Array(n);
    }
    if (e.optional && !given && !rnd) continue;
    if (e.optional && arch.attention_bias === false && !given) continue;
    out[e.name] = w;
  }
  return out;
}

export interface TinyModel {
  dir: string;
  manifest: Manifest;
  weights: Record<string, Float32Array>;
}

/** Writes dllm.json, model.onnx and tokenizer.json into `outDir` (created if needed). */
export function buildTinyModel(outDir: string, o: TinyModelOptions = {}): TinyModel {
  const c = { ...TINY_DEFAULTS, ...(o.config ?? {}) };
  const arch: Architecture = {
    type: 'qwen2',
    hidden_size: c.hidden_size,
    intermediate_size: c.intermediate_size,
    num_layers: c.num_layers,
    num_attention_heads: c.num_attention_heads,
    num_key_value_heads: c.num_key_value_heads,
    head_dim: c.head_dim,
    rms_norm_eps: c.rms_norm_eps,
    rope_theta: c.rope_theta,
    max_position_embeddings: c.max_position_embeddings,
    tie_word_embeddings: c.tie_word_embeddings,
    attention_bias: c.attention_bias,
  };
  const weights = tinyWeights(arch, c.vocab_size, o.weights, o.seed);
  fs.mkdirSync(outDir, { recursive: true });
  buildDecoderOnnx(arch, c.vocab_size, weights, {
    outFile: path.join(outDir, ONNX_FILE),
    externalData: false,
    attention: o.attention,
    linear: o.linear,
    fuseLinears: o.fuseLinears,
  });
  let tok = o.tokenizer;
  if (!tok) {
    let chars = '';
    for (let i = 32; i < 127 && chars.length + 4 < c.vocab_size; i++) chars += String.fromCharCode(i);
    tok = charTokenizerJson(chars);
  }
  fs.writeFileSync(path.join(outDir, TOKENIZER_FILE), JSON.stringify(tok));
  const manifest = parseManifest(
    {
      format: MODEL_FORMAT,
      name: 'tiny',
      version: `tiny-${o.seed ?? 'hand'}`,
      kind: 'block-diffusion',
      architecture: arch,
      vocab_size: c.vocab_size,
      tokens: { pad: 0, eos: 1, mask: 2, bos: 3 },
      block_size: 4,
      dtype: 'float32',
      quantization: null,
      graph: { inputs: graphInputNames(arch.num_layers), outputs: graphOutputNames(arch.num_layers), external_data: null },
      ...(o.manifest ?? {}),
    },
    'buildTinyModel manifest',
  );
  fs.writeFileSync(path.join(outDir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  return { dir: outDir, manifest, weights };
}
