// Activation inspection: run calibration text through a model directory with every linear layer's
// input exposed as an extra graph output, and summarise magnitudes per tensor. The quantization
// study behind dllm-farm found "massive" outliers (a few channels hundreds of times the median)
// concentrated in the FFN down projection's input; that is what this report looks for.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ONNX_FILE, layerIoNames, loadModelDir, type Manifest } from '@dllm/model';
import { xorshift32 } from '@dllm/prng';
import { problems } from '@dllm/tasks';
import { DataType, encodeValueInfo, loadOnnx, rewriteOnnx, type OnnxModel } from './onnx';
import { findLinears } from './quantize';

export interface CalibrationText {
  /** the whole text the model reads (prompt + answer). */
  text: string;
  /** characters at the start that are prompt (never replaced by mask tokens). */
  promptChars: number;
}

/** Calibration texts from the task suite's train split (never the test split the benchmark scores). */
export function calibrationTexts(familiesList: string[], perFamily: number, seed = 1): CalibrationText[] {
  const out: CalibrationText[] = [];
  for (const f of familiesList)
    for (const p of problems(f, { split: 'train', seed, n: perFamily })) out.push({ text: p.prompt + p.solution, promptChars: p.prompt.length });
  return out;
}

export interface LinearInput {
  /** the graph tensor feeding the linear layers. */
  tensor: string;
  /** the weights it feeds (q/k/v share one input, as do gate/up). */
  weights: string[];
  /** short label, e.g. `layers.1 mlp.down_proj`. */
  label: string;
  layer: number | null;
  K: number;
}

export function linearInputs(model: OnnxModel): LinearInput[] {
  const by = new Map<string, LinearInput>();
  for (const l of findLinears(model)) {
    const tensor = l.node.inputs[0];
    let e = by.get(tensor);
    if (!e) {
      e = { tensor, weights: [], label: '', layer: null, K: l.K };
      by.set(tensor, e);
    }
    e.weights.push(l.weight);
  }
  for (const e of by.values()) {
    const names = e.weights.map((w) => w.replace(/^model\./, '').replace(/\.weight(_t)?$/, ''));
    const m = /layers\.(\d+)\./.exec(names[0]);
    e.layer = m ? Number(m[1]) : null;
    const roles = names.map((n) => n.replace(/^layers\.\d+\./, ''));
    e.label = `${m ? `layers.${m[1]} ` : ''}${roles.join('/')}`;
  }
  return [...by.values()];
}

/** What running calibration text through a model needs: its manifest and its tokenizer. */
export interface ModelRunInfo {
  manifest: Manifest;
  /** text -> token ids, without special tokens (libs/model's Tokenizer). */
  tokenizer: { encode(text: string): number[] };
}

/** Reads a model directory through libs/model (manifest, graph contract, tokenizer). */
export async function loadRunInfo(dir: string): Promise<ModelRunInfo> {
  const m = await loadModelDir(dir);
  return { manifest: m.manifest, tokenizer: m.tokenizer };
}

/** Graph inputs for one sequence with an empty cache and the mask the model's kind decodes with. */
export function sequenceFeeds(ids: number[], info: ModelRunInfo): Record<string, ort.Tensor> {
  const m = info.manifest;
  const a = m.architecture;
  const S = ids.length;
  const block = m.kind === 'block-diffusion' ? m.block_size : 1;
  const mask = new Float32Array(S * S);
  for (let q = 0; q < S; q++) for (let k = 0; k < S; k++) mask[q * S + k] = Math.floor(k / block) <= Math.floor(q / block) ? 0 : -1e9;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, S]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(i))), [1, S]),
    attention_mask: new ort.Tensor('float32', mask, [1, 1, S, S]),
  };
  if (m.format !== 'dllm-farm/v1') {
    // Format v2 draw head: every position's logits (so the LM head sees every row), nothing banned.
    feeds.logit_index = new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(i))), [1, S]);
    feeds.banned_token_ids = new ort.Tensor('int64', new BigInt64Array(0), [0]);
  }
  for (let i = 0; i < a.num_layers; i++) {
    feeds[layerIoNames(i).pastKey] = new ort.Tensor('float32', new Float32Array(0), [1, a.num_key_value_heads, 0, a.head_dim]);
    feeds[layerIoNames(i).pastValue] = new ort.Tensor('float32', new Float32Array(0), [1, a.num_key_value_heads, 0, a.head_dim]);
  }
  return feeds;
}

/**
 * Token ids for a calibration text. For block-diffusion models, about half of the answer tokens
 * are replaced by the mask token (seeded), since that is what the model reads while decoding.
 */
export function calibrationIds(t: CalibrationText, info: ModelRunInfo, seed: number): number[] {
  const enc = (s: string) => info.tokenizer.encode(s);
  const prompt = enc(t.text.slice(0, t.promptChars));
  const answer = enc(t.text.slice(t.promptChars));
  if (info.manifest.kind === 'block-diffusion') {
    const next = xorshift32((seed * 2654435761) >>> 0);
    for (let i = 0; i < answer.length; i++) if (next() & 1) answer[i] = info.manifest.tokens.mask;
  }
  return [...prompt, ...answer];
}

/**
 * Runs calibration texts through the model with the given tensors exposed, and hands each
 * captured tensor (flattened to [tokens, K]) to `sink`.
 */
export async function captureActivations(
  modelDir: string,
  tensors: string[],
  texts: CalibrationText[],
  sink: (tensor: string, data: Float32Array, K: number) => void,
  { model = loadOnnx(path.join(modelDir, ONNX_FILE)), threads = 1 }: { model?: OnnxModel; threads?: number } = {},
): Promise<void> {
  const info = await loadRunInfo(modelDir);
  const existing = new Set(model.outputs.map((o) => o.name));
  const extra = tensors.filter((t) => !existing.has(t));
  const bytes = rewriteOnnx(model, { addOutputs: extra.map((t) => encodeValueInfo(t, DataType.FLOAT)) });
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'basic', intraOpNumThreads: threads });
  try {
    for (const [i, t] of texts.entries()) {
      const ids = calibrationIds(t, info, i + 1);
      const out = await session.run(sequenceFeeds(ids, info), tensors);
      for (const name of tensors) {
        const v = out[name];
        const K = v.dims[v.dims.length - 1];
        sink(name, v.data as Float32Array, K);
      }
    }
  } finally {
    await session.release();
  }
}

export interface ActivationStats {
  label: string;
  tensor: string;
  weights: string[];
  layer: number | null;
  K: number;
  tokens: number;
  absMax: number;
  /** percentiles of |x| over all values. */
  p50: number;
  p99: number;
  p999: number;
  /** absMax / p50: how far the largest value stands above a typical one. */
  ratio: number;
  /** channels whose max |x| is at least `massiveRatio` x p50, largest first (at most 8). */
  outlierChannels: { channel: number; absMax: number }[];
  /** share of tokens with at least one value >= massiveRatio x p50. */
  outlierTokenShare: number;
  massive: boolean;
}

export interface InspectOptions {
  families?: string[];
  perFamily?: number;
  seed?: number;
  /** a value is a massive outlier when |x| >= massiveRatio x median |x| (default 100). */
  massiveRatio?: number;
  threads?: number;
}

export async function inspectActivations(modelDir: string, o: InspectOptions = {}): Promise<ActivationStats[]> {
  const families = o.families ?? ['arith', 'string'];
  const texts = calibrationTexts(families, o.perFamily ?? 8, o.seed ?? 1);
  if (texts.length === 0) throw new Error('no calibration texts (check --families and --n)');
  const ratioThreshold = o.massiveRatio ?? 100;
  const model = loadOnnx(path.join(modelDir, ONNX_FILE));
  const inputs = linearInputs(model);
  if (inputs.length === 0) throw new Error('model has no MatMul on a constant float weight: nothing to inspect (is it already quantized?)');
  const chunks = new Map<string, { data: Float32Array; K: number }[]>();
  await captureActivations(
    modelDir,
    inputs.map((i) => i.tensor),
    texts,
    (t, data, K) => {
      const list = chunks.get(t) ?? [];
      list.push({ data: Float32Array.from(data), K });
      chunks.set(t, list);
    },
    { model, threads: o.threads },
  );
  return inputs.map((inp) => summarize(inp, chunks.get(inp.tensor) ?? [], ratioThreshold));
}

function summarize(inp: LinearInput, parts: { data: Float32Array; K: number }[], ratioThreshold: number): ActivationStats {
  const total = parts.reduce((s, p) => s + p.data.length, 0);
  const abs = new Float32Array(total);
  let off = 0;
  for (const p of parts) for (let i = 0; i < p.data.length; i++) abs[off++] = Math.abs(p.data[i]);
  const sorted = Float32Array.from(abs).sort();
  const pct = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))];
  const p50 = pct(0.5);
  const absMax = sorted[sorted.length - 1] ?? 0;
  const limit = ratioThreshold * Math.max(p50, 1e-12);
  const K = inp.K;
  const chanMax = new Float32Array(K);
  let tokens = 0;
  let outlierTokens = 0;
  for (let t = 0; t * K < total; t++) {
    tokens++;
    let hit = false;
    for (let c = 0; c < K; c++) {
      const v = abs[t * K + c];
      if (v > chanMax[c]) chanMax[c] = v;
      if (v >= limit) hit = true;
    }
    if (hit) outlierTokens++;
  }
  const outlierChannels = [...chanMax]
    .map((absMax, channel) => ({ channel, absMax }))
    .filter((c) => c.absMax >= limit)
    .sort((a, b) => b.absMax - a.absMax)
    .slice(0, 8);
  return {
    label: inp.label,
    tensor: inp.tensor,
    weights: inp.weights,
    layer: inp.layer,
    K,
    tokens,
    absMax,
    p50,
    p99: pct(0.99),
    p999: pct(0.999),
    ratio: absMax / Math.max(p50, 1e-12),
    outlierChannels,
    outlierTokenShare: tokens ? outlierTokens / tokens : 0,
    massive: absMax >= limit,
  };
}
