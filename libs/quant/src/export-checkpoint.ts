// The inverse of `dllm-farm convert`: a float dllm-farm model directory -> a Hugging Face Qwen2-style
// checkpoint (config.json, model.safetensors, tokenizer.json). Training tools start from it (continue
// pre-training, adapt an AR model into a block-diffusion one, fine-tune a served version), and
// convert(export(dir)) rebuilds the same graph.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ONNX_FILE, TOKENIZER_FILE, expectedWeights, readManifest, writeSafetensors, type Manifest, type TensorToWrite } from '@dllm/model';
import { DataType, floatTensor, loadOnnx } from './onnx';

export interface ExportResult {
  outDir: string;
  tensors: number;
  parameters: number;
}

function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/**
 * Reads every weight back out of model.onnx under its Hugging Face name: `<name>.weight_t` ([in,out],
 * as the builder stores linears for MatMul) is transposed back to `<name>.weight` ([out,in]).
 * Quantized models are refused: their float weights are gone.
 */
export function exportCheckpoint(modelDir: string, outDir: string): ExportResult {
  const m = readManifest(modelDir);
  if (m.quantization)
    throw new Error(`${modelDir} is quantized (${m.quantization.scheme}); its float weights are gone. Export the float model it was made from.`);
  const onnx = loadOnnx(path.join(modelDir, ONNX_FILE));
  const tensors: Record<string, TensorToWrite> = {};
  let parameters = 0;
  for (const w of expectedWeights(m.architecture, m.vocab_size)) {
    let value: Float32Array;
    const transposed = `${w.name}_t`; // the builder stores a linear's <name>.weight as <name>.weight_t
    if (w.shape.length === 2 && onnx.initializers.has(transposed)) {
      const t = floatTensor(onnx, transposed);
      const [outF, inF] = w.shape;
      if (t.dims.length !== 2 || t.dims[0] !== inF || t.dims[1] !== outF) {
        throw new Error(`${w.name}: stored as [${t.dims.join(',')}], expected [${inF},${outF}] for the manifest's architecture`);
      }
      value = transpose(t.data, inF, outF);
    } else if (onnx.initializers.has(w.name)) {
      const info = onnx.initializers.get(w.name)!;
      if (info.dataType !== DataType.FLOAT) throw new Error(`${w.name} is stored as ONNX type ${info.dataType}, not float32`);
      const t = floatTensor(onnx, w.name);
      if (t.dims.join(',') !== w.shape.join(',')) throw new Error(`${w.name}: stored as [${t.dims.join(',')}], expected [${w.shape.join(',')}]`);
      value = t.data;
    } else if (w.optional) {
      continue;
    } else {
      throw new Error(`${modelDir}/model.onnx has no initializer for ${w.name} (was it converted with --fuse-linears? export needs the unfused layout)`);
    }
    tensors[w.name] = { shape: w.shape, data: value };
    parameters += value.length;
  }
  fs.mkdirSync(outDir, { recursive: true });
  writeSafetensors(path.join(outDir, 'model.safetensors'), tensors);
  const config = hfConfig(m);
  fs.writeFileSync(path.join(outDir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  fs.copyFileSync(path.join(modelDir, TOKENIZER_FILE), path.join(outDir, TOKENIZER_FILE));
  return { outDir, tensors: Object.keys(tensors).length, parameters };
}

/** The Hugging Face Qwen2 config.json of a manifest (architecture, tokens, block size, source). */
export function hfConfig(m: Manifest): Record<string, unknown> {
  const a = m.architecture;
  return {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    vocab_size: m.vocab_size,
    hidden_size: a.hidden_size,
    intermediate_size: a.intermediate_size,
    num_hidden_layers: a.num_layers,
    num_attention_heads: a.num_attention_heads,
    num_key_value_heads: a.num_key_value_heads,
    head_dim: a.head_dim,
    rms_norm_eps: a.rms_norm_eps,
    rope_theta: a.rope_theta,
    max_position_embeddings: a.max_position_embeddings,
    tie_word_embeddings: a.tie_word_embeddings,
    attention_bias: a.attention_bias,
    hidden_act: 'silu',
    torch_dtype: 'float32',
    eos_token_id: m.tokens.eos,
    pad_token_id: m.tokens.pad,
    mask_token_id: m.tokens.mask,
    ...(m.tokens.bos !== undefined ? { bos_token_id: m.tokens.bos } : {}),
    bd_size: m.block_size,
    dllm_kind: m.kind,
    ...(m.delimiter_token_ids ? { delimiter_token_ids: m.delimiter_token_ids } : {}),
    ...(m.decode_defaults ? { decode_defaults: m.decode_defaults } : {}),
    dllm_source: { name: m.name, version: m.version },
  };
}
