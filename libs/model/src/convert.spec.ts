/** @jest-environment ./libs/model/src/testing/ort-environment.js */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { convertCheckpoint } from './convert';
import { loadModelDir } from './model-dir';
import { readSafetensors, writeSafetensors, writeShardedSafetensors, type SafetensorsDtype } from './safetensors';
import { tinyWeights } from './tiny';
import { charTokenizerJson } from './tokenizer';
import type { Architecture } from './manifest';
import { referenceForward } from './testing/reference';
import { blockCausal, emptyCache, forward, maxAbsDiff } from './testing/run';

const CONFIG = {
  architectures: ['Qwen2ForCausalLM'],
  model_type: 'qwen2',
  vocab_size: 40,
  hidden_size: 24,
  intermediate_size: 40,
  num_hidden_layers: 2,
  num_attention_heads: 6,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  max_position_embeddings: 128,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  bd_size: 4,
};
const ARCH: Architecture = {
  type: 'qwen2',
  hidden_size: 24,
  intermediate_size: 40,
  num_layers: 2,
  num_attention_heads: 6,
  num_key_value_heads: 2,
  head_dim: 4,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  max_position_embeddings: 128,
  tie_word_embeddings: false,
  attention_bias: true,
};
// specials at ids 0..3 named the way Qwen-family tokenizers name them
const TOKENIZER = charTokenizerJson('0123456789+-*=?:\n .,abcdefghijklmnop', ['<|endoftext|>', '<|im_end|>', '[MASK]', '<|pad|>']);

interface HfDirOptions {
  dtype?: SafetensorsDtype;
  shardBytes?: number;
  config?: Record<string, unknown>;
  arch?: Architecture;
  mutate?: (w: Record<string, Float32Array>) => Record<string, { shape: number[]; data: Float32Array }> | void;
}

function writeHfDir(dir: string, o: HfDirOptions = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  const arch = o.arch ?? ARCH;
  const weights = tinyWeights(arch, CONFIG.vocab_size, undefined, 11);
  const shapes: Record<string, number[]> = {};
  const tensors: Record<string, { shape: number[]; data: Float32Array; dtype?: SafetensorsDtype }> = {};
  // shapes from the names: embeddings / head [V,H], others inferred from sizes
  const H = arch.hidden_size;
  for (const [n, d] of Object.entries(weights)) {
    const rows =
      n.endsWith('norm.weight') || n.endsWith('.bias')
        ? [d.length]
        : n.includes('embed_tokens') || n.startsWith('lm_head')
          ? [CONFIG.vocab_size, H]
          : n.includes('down_proj')
            ? [H, arch.intermediate_size]
            : n.includes('o_proj')
              ? [H, d.length / H]
              : [d.length / H, H];
    shapes[n] = rows;
    tensors[n] = { shape: rows, data: d, dtype: o.dtype ?? 'F32' };
  }
  const extra = o.mutate?.(weights);
  if (extra) for (const [n, t] of Object.entries(extra)) tensors[n] = { ...t, dtype: o.dtype ?? 'F32' };
  if (o.shardBytes) writeShardedSafetensors(dir, tensors, o.shardBytes);
  else writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...CONFIG, ...(o.config ?? {}) }));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(TOKENIZER));
}

describe('convert', () => {
  let tmp: string;
  beforeAll(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-convert-'))));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it.each(['BF16', 'F16'] as const)('converts a sharded %s checkpoint whose graph matches the reference forward', async (dtype) => {
    const hf = path.join(tmp, `hf-${dtype}`);
    const out = path.join(tmp, `out-${dtype}`);
    writeHfDir(hf, { dtype, shardBytes: 4000 });
    expect(fs.readdirSync(hf).filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(2);
    const r = await convertCheckpoint(hf, out);
    expect(r.manifest.tokens).toEqual({ mask: 2, eos: 1, pad: 3 });
    expect(r.manifest.block_size).toBe(4);
    expect(r.manifest.kind).toBe('block-diffusion');
    expect(r.manifest.architecture.head_dim).toBe(4);
    expect(r.manifest.version).toMatch(new RegExp(`^hf-${dtype}-[0-9a-f]{12}$`));
    expect(r.manifest.delimiter_token_ids!.length).toBeGreaterThan(0);
    const m = await loadModelDir(out, { session: true });
    try {
      const st = readSafetensors(hf);
      const W = Object.fromEntries(st.names().map((n) => [n, st.get(n)]));
      const ids = [4, 9, 22, 2, 2, 30, 31, 5];
      const { logits } = await forward(m.session!, 2, ids, 0, emptyCache(2, 1, 2, 4), blockCausal(4));
      const ref = referenceForward(
        ARCH,
        CONFIG.vocab_size,
        W,
        ids,
        ids.map((_, i) => i),
        blockCausal(4),
      );
      expect(maxAbsDiff(logits, Float64Array.from(ref.flatMap((x) => [...x])))).toBeLessThan(1e-4);
    } finally {
      await m.session!.release();
    }
  });

  it('ties the LM head to the embeddings when lm_head.weight is absent, and honours flags', async () => {
    const hf = path.join(tmp, 'hf-tied');
    writeHfDir(hf, { arch: { ...ARCH, tie_word_embeddings: true }, config: { tie_word_embeddings: true, head_dim: 4 } });
    const r = await convertCheckpoint(hf, path.join(tmp, 'out-tied'), {
      maskTokenId: 39,
      eosTokenId: 0,
      padTokenId: 0,
      blockSize: 8,
      name: 'x',
      version: 'v7',
      kind: 'autoregressive',
      externalData: true,
    });
    expect(r.manifest).toMatchObject({ name: 'x', version: 'v7', kind: 'autoregressive', block_size: 8, tokens: { mask: 39, eos: 0, pad: 0 } });
    expect(r.externalData).toBe(true);
    expect(fs.existsSync(path.join(tmp, 'out-tied', 'model.onnx.data'))).toBe(true);
    const m = await loadModelDir(path.join(tmp, 'out-tied'), { session: true });
    const { logits } = await forward(m.session!, 2, [4, 5], 0, emptyCache(2, 1, 2, 4), blockCausal(4));
    const st = readSafetensors(hf);
    const W = Object.fromEntries(st.names().map((n) => [n, st.get(n)]));
    const ref = referenceForward({ ...ARCH, tie_word_embeddings: true }, CONFIG.vocab_size, W, [4, 5], [0, 1], blockCausal(4));
    expect(maxAbsDiff(logits, Float64Array.from(ref.flatMap((x) => [...x])))).toBeLessThan(1e-4);
    await m.session!.release();
    fs.renameSync(path.join(tmp, 'out-tied', 'model.onnx.data'), path.join(tmp, 'out-tied', 'moved.data'));
    await expect(loadModelDir(path.join(tmp, 'out-tied'))).rejects.toThrow(/keeps its weights in model.onnx.data, which is missing/);
  });

  it('fails clearly on a missing file, a wrong tensor shape, a mask id outside the vocabulary and no mask token', async () => {
    const hf = path.join(tmp, 'hf-bad');
    writeHfDir(hf);
    fs.rmSync(path.join(hf, 'config.json'));
    await expect(convertCheckpoint(hf, path.join(tmp, 'o1'))).rejects.toThrow(/missing config.json/);
    await expect(convertCheckpoint(path.join(tmp, 'nowhere'), path.join(tmp, 'o1'))).rejects.toThrow(/checkpoint directory not found/);

    const hf2 = path.join(tmp, 'hf-shape');
    writeHfDir(hf2, { mutate: () => ({ 'model.layers.1.self_attn.k_proj.weight': { shape: [6, 24], data: new Float32Array(144) } }) });
    await expect(convertCheckpoint(hf2, path.join(tmp, 'o2'))).rejects.toThrow(
      'weight model.layers.1.self_attn.k_proj.weight has shape [6, 24], expected [8, 24]',
    );
    expect(fs.existsSync(path.join(tmp, 'o2', 'model.onnx'))).toBe(false);

    const hf3 = path.join(tmp, 'hf-ok');
    writeHfDir(hf3);
    await expect(convertCheckpoint(hf3, path.join(tmp, 'o3'), { maskTokenId: 40 })).rejects.toThrow(
      /mask token id 40 is outside the vocabulary \(vocab_size 40\)/,
    );
    fs.writeFileSync(path.join(hf3, 'tokenizer.json'), JSON.stringify(charTokenizerJson('abc', ['<|endoftext|>'])));
    await expect(convertCheckpoint(hf3, path.join(tmp, 'o3'))).rejects.toThrow(/no mask token: .*pass --mask-token-id/);
    fs.rmSync(path.join(hf3, 'tokenizer.json'));
    fs.writeFileSync(path.join(hf3, 'tokenizer.json'), JSON.stringify(TOKENIZER));
    fs.writeFileSync(path.join(hf3, 'config.json'), JSON.stringify({ ...CONFIG, rope_scaling: { type: 'yarn', factor: 4 } }));
    await expect(convertCheckpoint(hf3, path.join(tmp, 'o3'))).rejects.toThrow(/rope_scaling .* is not supported/);
    fs.writeFileSync(path.join(hf3, 'config.json'), JSON.stringify({ ...CONFIG, model_type: 'gpt2' }));
    await expect(convertCheckpoint(hf3, path.join(tmp, 'o3'))).rejects.toThrow(/model_type gpt2 is not supported/);
    fs.writeFileSync(path.join(hf3, 'config.json'), JSON.stringify({ ...CONFIG, num_attention_heads: 5 }));
    await expect(convertCheckpoint(hf3, path.join(tmp, 'o3'))).rejects.toThrow(/num_attention_heads \(5\) must be a multiple of num_key_value_heads \(2\)/);
    fs.rmSync(path.join(hf3, 'tokenizer.json'));
    await expect(convertCheckpoint(hf3, path.join(tmp, 'o3'))).rejects.toThrow(/missing tokenizer.json/);
  });
});
