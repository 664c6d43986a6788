// Hugging Face Qwen2 checkpoint directory -> dllm-farm model directory.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildDecoderOnnx, type AttentionImpl, type BuildOptions } from './builder';
import { MODEL_FORMAT, graphInputNames, graphOutputNames, parseManifest, type Architecture, type Manifest } from './manifest';
import { MANIFEST_FILE, ONNX_FILE, TOKENIZER_FILE, loadModelDir } from './model-dir';
import { readSafetensors } from './safetensors';
import { Tokenizer } from './tokenizer';

export const MASK_TOKEN_NAMES = ['<|mask|>', '[MASK]', '<mask>', '<|MASK|>'];
export const EOS_TOKEN_NAMES = ['<|eos|>', '<|im_end|>', '<|endoftext|>', '</s>', '<eos>'];
export const PAD_TOKEN_NAMES = ['<|pad|>', '[PAD]', '<pad>', '<|endoftext|>'];
export const BOS_TOKEN_NAMES = ['<|bos|>', '<s>', '<bos>'];
/** Candidate AdaBlock delimiters: newline (raw and byte-level forms) and sentence punctuation. */
export const DELIMITER_TOKENS = ['\n', 'Ċ', '\n\n', 'ĊĊ', '.', ',', ';', ':', '!', '?', '.Ċ', '.ĊĊ', ':Ċ', ')Ċ'];

/** HF config.json keys this converter reads. */
export interface HfQwen2Config {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number;
  head_dim?: number;
  rms_norm_eps?: number;
  rope_theta?: number;
  vocab_size: number;
  max_position_embeddings?: number;
  tie_word_embeddings?: boolean;
  torch_dtype?: string;
  model_type?: string;
  attention_bias?: boolean;
  bd_size?: number;
  mask_token_id?: number;
  eos_token_id?: number | number[];
  pad_token_id?: number | null;
  bos_token_id?: number | null;
  dllm_kind?: string;
  delimiter_token_ids?: number[];
  /** The model's decoding defaults, carried into the manifest as is (Manifest['decode_defaults']; `export` writes it). */
  decode_defaults?: Record<string, unknown>;
  [k: string]: unknown;
}

export function hfConfigToArchitecture(c: HfQwen2Config, where = 'config.json'): Architecture {
  const need = (k: keyof HfQwen2Config) => {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`${where}: ${String(k)} must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  if (c.model_type && !/qwen|llama|dllm/i.test(c.model_type)) {
    throw new Error(`${where}: model_type ${c.model_type} is not supported (expected a Qwen2-style decoder: qwen2, llama, Fast-dLLM v2)`);
  }
  const rs = c.rope_scaling as { type?: string; rope_type?: string } | null | undefined;
  const rsType = rs ? (rs.rope_type ?? rs.type) : undefined;
  if (rs && rsType !== 'default') throw new Error(`${where}: rope_scaling ${JSON.stringify(rs)} is not supported (plain rotary only)`);
  if (c.use_sliding_window === true) throw new Error(`${where}: use_sliding_window is not supported (full attention only)`);
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu')
    throw new Error(`${where}: hidden_act ${String(c.hidden_act)} is not supported (SwiGLU with silu only)`);
  const hidden = need('hidden_size');
  const heads = need('num_attention_heads');
  const kvHeads = c.num_key_value_heads === undefined ? heads : need('num_key_value_heads');
  if (heads % kvHeads) throw new Error(`${where}: num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`);
  if ((c.head_dim === undefined || c.head_dim === null) && hidden % heads)
    throw new Error(`${where}: hidden_size ${hidden} is not divisible by num_attention_heads ${heads}; give head_dim`);
  return {
    type: 'qwen2',
    hidden_size: hidden,
    intermediate_size: need('intermediate_size'),
    num_layers: need('num_hidden_layers'),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: c.head_dim === undefined || c.head_dim === null ? hidden / heads : need('head_dim'),
    rms_norm_eps: c.rms_norm_eps ?? 1e-6,
    rope_theta: c.rope_theta ?? 10000,
    max_position_embeddings: c.max_position_embeddings ?? 32768,
    tie_word_embeddings: c.tie_word_embeddings ?? false,
    ...(c.attention_bias !== undefined ? { attention_bias: c.attention_bias } : {}),
  };
}

export interface ConvertOptions {
  maskTokenId?: number;
  eosTokenId?: number;
  padTokenId?: number;
  bosTokenId?: number;
  blockSize?: number;
  name?: string;
  version?: string;
  kind?: 'block-diffusion' | 'autoregressive';
  attention?: AttentionImpl;
  externalData?: BuildOptions['externalData'];
  fuseLinears?: boolean;
  log?: (line: string) => void;
}

export interface ConvertResult {
  outDir: string;
  manifest: Manifest;
  files: string[];
  weightBytes: number;
  externalData: boolean;
  seconds: number;
}

function hashFiles(files: string[]): string {
  const h = crypto.createHash('sha256');
  const buf = Buffer.alloc(1 << 22);
  for (const f of files) {
    h.update(path.basename(f));
    const fd = fs.openSync(f, 'r');
    try {
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        h.update(buf.subarray(0, n));
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  return h.digest('hex').slice(0, 12);
}

/** Converts `hfDir` (config.json, model.safetensors or shards, tokenizer.json) into `outDir`. */
export async function convertCheckpoint(hfDir: string, outDir: string, o: ConvertOptions = {}): Promise<ConvertResult> {
  const t0 = Date.now();
  const log = o.log ?? (() => {});
  const src = path.resolve(hfDir);
  const dst = path.resolve(outDir);
  if (!fs.existsSync(src) || !fs.statSync(src).isDirectory()) throw new Error(`checkpoint directory not found: ${hfDir}`);
  if (src === dst) throw new Error('output directory must differ from the checkpoint directory');
  const cfgPath = path.join(src, 'config.json');
  if (!fs.existsSync(cfgPath)) throw new Error(`${hfDir}: missing config.json`);
  const tokPath = path.join(src, TOKENIZER_FILE);
  if (!fs.existsSync(tokPath)) throw new Error(`${hfDir}: missing tokenizer.json (a Hugging Face fast tokenizer file is required)`);
  let cfg: HfQwen2Config;
  try {
    cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new Error(`${cfgPath}: not valid JSON (${(e as Error).message})`);
  }
  const arch = hfConfigToArchitecture(cfg, cfgPath);
  const vocab = cfg.vocab_size;
  if (!Number.isInteger(vocab) || vocab <= 0) throw new Error(`${cfgPath}: vocab_size must be a positive integer`);
  const tok = Tokenizer.fromFile(tokPath);
  const weights = readSafetensors(src);

  const firstId = (v: unknown): number | undefined => (Array.isArray(v) ? v[0] : typeof v === 'number' ? v : undefined);
  const pick = (label: string, flag: number | undefined, fromCfg: unknown, names: readonly string[]): number | undefined => {
    const id = flag ?? firstId(fromCfg) ?? tok.findToken(names);
    if (id !== undefined) log(`${label} token: ${id} (${tok.idToToken(id) ?? '?'})`);
    return id;
  };
  const mask = pick('mask', o.maskTokenId, cfg.mask_token_id, MASK_TOKEN_NAMES);
  if (mask === undefined)
    throw new Error(`no mask token: none of ${MASK_TOKEN_NAMES.join(' ')} is in tokenizer.json and config.json has no mask_token_id; pass --mask-token-id`);
  const eos = pick('eos', o.eosTokenId, cfg.eos_token_id, EOS_TOKEN_NAMES);
  if (eos === undefined)
    throw new Error(`no stop token: none of ${EOS_TOKEN_NAMES.join(' ')} is in tokenizer.json and config.json has no eos_token_id; pass --eos-token-id`);
  const pad = pick('pad', o.padTokenId, cfg.pad_token_id ?? undefined, PAD_TOKEN_NAMES) ?? eos;
  const bos = o.bosTokenId ?? cfg.bos_token_id ?? tok.findToken(BOS_TOKEN_NAMES);

  let delimiters = Array.isArray(cfg.delimiter_token_ids) ? cfg.delimiter_token_ids : undefined;
  if (!delimiters) {
    const found = new Set<number>();
    for (const t of DELIMITER_TOKENS) {
      const id = tok.tokenToId(t);
      if (id !== undefined) found.add(id);
    }
    delimiters = [...found];
  }
  const kind = o.kind ?? (cfg.dllm_kind === 'autoregressive' ? 'autoregressive' : 'block-diffusion');
  const name = o.name ?? path.basename(src);
  const weightFiles = weights.names().map((n) => weights.info(n).file);
  const version = o.version ?? `${name}-${hashFiles([cfgPath, ...new Set(weightFiles)])}`;

  // Validate the manifest before the (slow) graph build so bad ids fail fast.
  const manifest = parseManifest(
    {
      format: MODEL_FORMAT,
      name,
      version,
      kind,
      architecture: arch,
      vocab_size: vocab,
      tokens: { mask, eos, pad, ...(bos !== undefined && bos !== null ? { bos } : {}) },
      block_size: o.blockSize ?? cfg.bd_size ?? 32,
      dtype: 'float32',
      delimiter_token_ids: delimiters,
      ...(cfg.decode_defaults !== undefined ? { decode_defaults: cfg.decode_defaults } : {}),
      quantization: null,
      graph: { inputs: graphInputNames(arch.num_layers), outputs: graphOutputNames(arch.num_layers), external_data: null },
    },
    'manifest from config.json and flags',
  );
  if (tok.vocabSize > vocab) throw new Error(`tokenizer.json has ${tok.vocabSize} tokens but config.json vocab_size is ${vocab}`);

  fs.mkdirSync(dst, { recursive: true });
  const onnxPath = path.join(dst, ONNX_FILE);
  for (const stale of [onnxPath, `${onnxPath}.data`]) if (fs.existsSync(stale)) fs.rmSync(stale);
  log(`building ${arch.num_layers}-layer graph (hidden ${arch.hidden_size}, vocab ${vocab})`);
  const built = buildDecoderOnnx(arch, vocab, weights, {
    outFile: onnxPath,
    externalData: o.externalData,
    attention: o.attention,
    fuseLinears: o.fuseLinears,
    metadata: { 'dllm-farm.name': name, 'dllm-farm.version': version, 'dllm-farm.source': path.basename(src) },
  });
  manifest.graph!.external_data = built.externalData ? `${ONNX_FILE}.data` : null;
  fs.copyFileSync(tokPath, path.join(dst, TOKENIZER_FILE));
  fs.writeFileSync(path.join(dst, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  await loadModelDir(dst);
  return {
    outDir: dst,
    manifest,
    files: [...built.files, path.join(dst, TOKENIZER_FILE), path.join(dst, MANIFEST_FILE)],
    weightBytes: built.weightBytes,
    externalData: built.externalData,
    seconds: (Date.now() - t0) / 1000,
  };
}
