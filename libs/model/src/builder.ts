// Writes the dllm-farm ONNX graph for a Qwen2-style decoder from its weights.
//
// Per layer: RMSNorm -> q/k/v linears (+bias) -> rotary (HF rotate_half convention) -> keys and
// values of the new positions are graph outputs (present_*) and are concatenated after the past
// -> grouped-query attention with the caller's additive mask -> o linear -> residual -> RMSNorm ->
// SwiGLU MLP -> residual. Final RMSNorm and LM head (untied, or tied to the embeddings) on the rows
// `logit_index` selects only, then the draw statistics (logit-head.ts; model format dllm-farm/v2).
//
// Attention formulations (bench/model-graph.ts measures them):
//   'matmul': plain MatMul/Softmax. GQA without repeating K/V: the query heads of one KV group
//             are folded into the row axis ([B,Hkv,G*S,Dh] x [B,Hkv,Dh,T]) and the mask is tiled
//             G times along rows once per forward.
//   'mha':    com.microsoft MultiHeadAttention with attention_bias; K/V heads are repeated to Hq.
//   'gqa':    com.microsoft GroupQueryAttention with attention_bias. ORT applies its own causal mask
//             on top, so it is exact for causal (AR) masks only, NOT for block-causal: benchmark use.
// Every linear layer is emitted by one function (`LinearEmitter`) so quantization can replace it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DRAW_IO, drawInputSpecs, drawOutputSpecs, emitDrawStatistics, gatherDrawRows } from './logit-head';
import { OnnxGraph, TensorType, writeChunks, type IoSpec } from './onnx';
import { GRAPH_IO, layerIoNames, type Architecture } from './manifest';
import type { WeightSource } from './safetensors';

export type AttentionImpl = 'matmul' | 'mha' | 'gqa';

/**
 * Emits `y = x W^T + b` for an HF linear weight W of shape [outF, inF] (row-major) and returns the
 * output value name. Replace it to emit quantized linears (DequantizeLinear -> MatMul,
 * com.microsoft MatMulNBits, ...); everything else in the graph stays the same.
 */
export type LinearEmitter = (g: OnnxGraph, input: string, name: string, weight: Float32Array, outF: number, inF: number, bias?: Float32Array) => string;

export function transpose2d(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) t[c * rows + r] = w[base + c];
  }
  return t;
}

/** Default linear: a transposed fp32 initializer `<name>.weight_t` [inF,outF], MatMul, Add bias. */
export const emitLinear: LinearEmitter = (g, input, name, weight, outF, inF, bias) => {
  const w = g.floatInit(`${name}.weight_t`, [inF, outF], transpose2d(weight, outF, inF));
  const y = g.op('MatMul', [input, w]);
  if (!bias) return y;
  const b = g.floatInit(`${name}.bias`, [outF], bias);
  return g.op('Add', [y, b]);
};

/** Several linears on the same input as one (weights stacked along the output axis), then Split. */
function fusedLinear(
  g: OnnxGraph,
  linear: LinearEmitter,
  input: string,
  name: string,
  parts: { rows: number; w: Float32Array; b?: Float32Array }[],
  inF: number,
): string[] {
  const total = parts.reduce((n, t) => n + t.rows, 0);
  const w = new Float32Array(total * inF);
  let bias: Float32Array | undefined;
  if (parts.some((t) => t.b)) bias = new Float32Array(total);
  let r = 0;
  for (const t of parts) {
    w.set(t.w, r * inF);
    if (t.b) bias!.set(t.b, r);
    r += t.rows;
  }
  const y = linear(g, input, name, w, total, inF, bias);
  return g.node('Split', [y, g.ints(parts.map((t) => t.rows))], parts.length, { axis: -1 });
}

/** Weights by Hugging Face name: a checkpoint, a plain map, or a function. */
export type WeightsInput = WeightSource | Record<string, Float32Array> | ((name: string) => Float32Array | undefined);

interface Weights {
  has(name: string): boolean;
  /** Throws when missing or of the wrong shape; reads no data for checkpoints. */
  check(name: string, shape: number[]): void;
  get(name: string, shape: number[]): Float32Array;
  getOptional(name: string, shape: number[]): Float32Array | undefined;
}

function isSource(w: WeightsInput): w is WeightSource {
  return typeof w === 'object' && w !== null && typeof (w as WeightSource).get === 'function' && typeof (w as WeightSource).shape === 'function';
}

function wrapWeights(input: WeightsInput): Weights {
  const checkLen = (name: string, data: Float32Array, shape: number[]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`weight ${name} has ${data.length} values, expected shape [${shape.join(', ')}] (${n} values)`);
    return data;
  };
  if (isSource(input)) {
    const w: Weights = {
      has: (n) => input.has(n),
      check(name, shape) {
        if (!input.has(name)) throw new Error(`weight ${name} is missing from the checkpoint`);
        const s = input.shape(name);
        const same = s.length === shape.length && s.every((d, i) => d === shape[i]);
        if (!same) throw new Error(`weight ${name} has shape [${s.join(', ')}], expected [${shape.join(', ')}] (check config.json against the checkpoint)`);
      },
      get(name, shape) {
        w.check(name, shape);
        return input.get(name);
      },
      getOptional: (name, shape) => (input.has(name) ? w.get(name, shape) : undefined),
    };
    return w;
  }
  const fn = typeof input === 'function' ? input : (n: string) => input[n];
  return {
    has: (n) => fn(n) !== undefined,
    check(name, shape) {
      this.get(name, shape);
    },
    get(name, shape) {
      const d = fn(name);
      if (!d) throw new Error(`weight ${name} is missing`);
      return checkLen(name, d, shape);
    },
    getOptional(name, shape) {
      const d = fn(name);
      return d ? checkLen(name, d, shape) : undefined;
    },
  };
}

/** The expected HF weight names and shapes of an architecture (lm_head only when untied). */
export function expectedWeights(a: Architecture, vocabSize: number): { name: string; shape: number[]; optional?: boolean }[] {
  const H = a.hidden_size;
  const qd = a.num_attention_heads * a.head_dim;
  const kvd = a.num_key_value_heads * a.head_dim;
  const out: { name: string; shape: number[]; optional?: boolean }[] = [{ name: 'model.embed_tokens.weight', shape: [vocabSize, H] }];
  for (let i = 0; i < a.num_layers; i++) {
    const p = `model.layers.${i}`;
    out.push(
      { name: `${p}.input_layernorm.weight`, shape: [H] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [qd, H] },
      { name: `${p}.self_attn.q_proj.bias`, shape: [qd], optional: true },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kvd, H] },
      { name: `${p}.self_attn.k_proj.bias`, shape: [kvd], optional: true },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kvd, H] },
      { name: `${p}.self_attn.v_proj.bias`, shape: [kvd], optional: true },
      { name: `${p}.self_attn.o_proj.weight`, shape: [H, qd] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [H] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [a.intermediate_size, H] },
      { name: `${p}.mlp.up_proj.weight`, shape: [a.intermediate_size, H] },
      { name: `${p}.mlp.down_proj.weight`, shape: [H, a.intermediate_size] },
    );
  }
  out.push({ name: 'model.norm.weight', shape: [H] });
  if (!a.tie_word_embeddings) out.push({ name: 'lm_head.weight', shape: [vocabSize, H] });
  return out;
}

/** fp32 bytes of all weights as stored in the graph (tied embeddings are stored twice). */
export function estimateWeightBytes(a: Architecture, vocabSize: number): number {
  let n = 0;
  for (const w of expectedWeights(a, vocabSize)) n += w.shape.reduce((x, y) => x * y, 1);
  if (a.tie_word_embeddings) n += vocabSize * a.hidden_size;
  return n * 4;
}

/** Weights above this size go to external data (protobuf messages are limited to 2 GiB). */
export const EXTERNAL_DATA_THRESHOLD = 1.8 * 1024 ** 3;

export interface BuildOptions {
  /** Write model.onnx here (and model.onnx.data beside it when external). Without it the bytes are returned. */
  outFile?: string;
  /** 'auto' (default): external data when the weights pass `externalDataThreshold`. */
  externalData?: 'auto' | boolean;
  /** bytes; default EXTERNAL_DATA_THRESHOLD (~1.8 GiB). */
  externalDataThreshold?: number;
  attention?: AttentionImpl;
  linear?: LinearEmitter;
  /**
   * Fuse q/k/v into one linear `self_attn.qkv_proj` and gate/up into `mlp.gate_up_proj`, split after
   * the MatMul (fewer, larger MatMuls; bench/model-graph.ts measures it). Default false.
   */
  fuseLinears?: boolean;
  /** Stored in the model's metadata_props. */
  metadata?: Record<string, string>;
}

export interface BuildResult {
  /** The model bytes when no outFile was given. */
  bytes?: Uint8Array;
  files: string[];
  weightBytes: number;
  externalData: boolean;
}

export function validateArchitecture(a: Architecture, vocabSize: number): void {
  const bad = (m: string) => {
    throw new Error(`architecture: ${m}`);
  };
  for (const k of ['hidden_size', 'intermediate_size', 'num_layers', 'num_attention_heads', 'num_key_value_heads', 'head_dim'] as const) {
    if (!Number.isInteger(a[k]) || a[k] <= 0) bad(`${k} must be a positive integer, got ${a[k]}`);
  }
  if (a.num_attention_heads % a.num_key_value_heads)
    bad(`num_attention_heads (${a.num_attention_heads}) must be a multiple of num_key_value_heads (${a.num_key_value_heads})`);
  if (a.head_dim % 2) bad(`head_dim must be even for rotary embeddings, got ${a.head_dim}`);
  if (!Number.isInteger(vocabSize) || vocabSize <= 0) bad(`vocab_size must be a positive integer, got ${vocabSize}`);
}

/** Builds the decoder graph. See the file comment and docs/MODEL_FORMAT.md for the I/O contract. */
export function buildDecoderOnnx(a: Architecture, vocabSize: number, weightsIn: WeightsInput, opts: BuildOptions = {}): BuildResult {
  validateArchitecture(a, vocabSize);
  const W = wrapWeights(weightsIn);
  const linear = opts.linear ?? emitLinear;
  const attention = opts.attention ?? 'matmul';
  const ext = opts.externalData ?? 'auto';
  const useExternal = ext === true || (ext === 'auto' && estimateWeightBytes(a, vocabSize) > (opts.externalDataThreshold ?? EXTERNAL_DATA_THRESHOLD));
  if (useExternal && !opts.outFile) throw new Error('external data needs an outFile');
  // Check every shape before writing anything (a wrong shape must not leave half a model behind).
  for (const e of expectedWeights(a, vocabSize)) if (!e.optional || W.has(e.name)) W.check(e.name, e.shape);
  const dataFile = useExternal ? `${opts.outFile}.data` : null;
  if (opts.outFile) fs.mkdirSync(path.dirname(path.resolve(opts.outFile)), { recursive: true });
  const g = new OnnxGraph('dllm_qwen2', dataFile);

  const H = a.hidden_size;
  const Hq = a.num_attention_heads;
  const Hkv = a.num_key_value_heads;
  const Dh = a.head_dim;
  const G = Hq / Hkv;
  const L = a.num_layers;

  // Shared constants.
  const eps = g.floats([a.rms_norm_eps], 'rms_eps', true);
  const two = g.floats([2], 'two', true);
  const axesLast = g.ints([-1], 'axes_last');
  const scale = g.floats([1 / Math.sqrt(Dh)], 'attn_scale', true);

  const rmsNorm = (x: string, wName: string): string => {
    const w = g.floatInit(wName, [H], W.get(wName, [H]));
    // Pow -> ReduceMean -> Add -> Sqrt -> Div -> Mul: the pattern ORT fuses into
    // SimplifiedLayerNormalization (and SkipSimplifiedLayerNormalization with the residual Add).
    const mean = g.op('ReduceMean', [g.op('Pow', [x, two])], { axes: [-1], keepdims: 1 });
    return g.op('Mul', [g.op('Div', [x, g.op('Sqrt', [g.op('Add', [mean, eps])])]), w]);
  };

  // Embedding.
  const embed = W.get('model.embed_tokens.weight', [vocabSize, H]);
  const embedInit = g.floatInit('model.embed_tokens.weight', [vocabSize, H], embed);
  let h = g.op('Gather', [embedInit, GRAPH_IO.inputs.inputIds], { axis: 0 });

  // Rotary tables from position_ids: cos [B,1,S,Dh]; sinSigned = [-sin, sin] halves, so that
  // rope(x) = x*cos + swap_halves(x)*sinSigned equals HF's x*cos + rotate_half(x)*sin.
  const half = Dh / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(a.rope_theta, (2 * i) / Dh);
  const invFreqInit = g.floatInit('rope_inv_freq', [half], invFreq);
  const posF = g.op('Cast', [GRAPH_IO.inputs.positionIds], { to: TensorType.FLOAT });
  const freqs = g.op('Mul', [g.op('Unsqueeze', [posF, axesLast]), invFreqInit]); // [B,S,half]
  const axis1 = g.ints([1], 'axes_1');
  const cosHalf = g.op('Cos', [freqs]);
  const sinHalf = g.op('Sin', [freqs]);
  const cos = g.op('Unsqueeze', [g.op('Concat', [cosHalf, cosHalf], { axis: -1 }), axis1], {}, '', 'rope_cos');
  const sinS = g.op('Unsqueeze', [g.op('Concat', [g.op('Neg', [sinHalf]), sinHalf], { axis: -1 }), axis1], {}, '', 'rope_sin_signed');
  const halves = g.ints([half, half], 'rope_split');
  const rope = (x: string): string => {
    const [x1, x2] = g.node('Split', [x, halves], 2, { axis: -1 });
    const swapped = g.op('Concat', [x2, x1], { axis: -1 });
    return g.op('Add', [g.op('Mul', [x, cos]), g.op('Mul', [swapped, sinS])]);
  };

  // Mask, prepared once: tiled over the G query heads of a KV group (matmul) or used as is (mha).
  const maskIn = GRAPH_IO.inputs.attentionMask;
  const mask = attention === 'matmul' && G > 1 ? g.op('Tile', [maskIn, g.ints([1, 1, G, 1], 'mask_tile')], {}, '', 'mask_tiled') : maskIn;

  let gqaSeqlens: string | undefined;
  let gqaTotal: string | undefined;
  if (attention === 'gqa') {
    const shp = g.op('Shape', [maskIn]);
    const T = g.op('Slice', [shp, g.ints([3]), g.ints([4])]);
    const Bd = g.op('Slice', [shp, g.ints([0]), g.ints([1])]);
    gqaSeqlens = g.op('Cast', [g.op('Expand', [g.op('Sub', [T, g.ints([1])]), Bd])], { to: TensorType.INT32 });
    gqaTotal = g.op('Cast', [g.op('Squeeze', [T])], { to: TensorType.INT32 });
  }
  const shapeBSHD = (heads: number) => g.ints([0, 0, heads, Dh]);
  const perm0213 = [0, 2, 1, 3];

  for (let i = 0; i < L; i++) {
    const io = layerIoNames(i);
    const p = `model.layers.${i}`;
    const x = rmsNorm(h, `${p}.input_layernorm.weight`);
    const qd = Hq * Dh;
    const kvd = Hkv * Dh;
    const qkvParts = [
      { n: 'q_proj', rows: qd },
      { n: 'k_proj', rows: kvd },
      { n: 'v_proj', rows: kvd },
    ].map(({ n, rows }) => ({ rows, w: W.get(`${p}.self_attn.${n}.weight`, [rows, H]), b: W.getOptional(`${p}.self_attn.${n}.bias`, [rows]), n }));
    let q: string, k: string, v: string;
    if (opts.fuseLinears) {
      [q, k, v] = fusedLinear(g, linear, x, `${p}.self_attn.qkv_proj`, qkvParts, H);
    } else {
      [q, k, v] = qkvParts.map((t) => linear(g, x, `${p}.self_attn.${t.n}`, t.w, t.rows, H, t.b));
    }
    const qh = g.op('Transpose', [g.op('Reshape', [q, shapeBSHD(Hq)])], { perm: perm0213 }); // [B,Hq,S,Dh]
    const kh = g.op('Transpose', [g.op('Reshape', [k, shapeBSHD(Hkv)])], { perm: perm0213 }); // [B,Hkv,S,Dh]
    g.node('Transpose', [g.op('Reshape', [v, shapeBSHD(Hkv)])], [io.presentValue], { perm: perm0213 });
    const kr = rope(kh);
    g.node('Identity', [kr], [io.presentKey]);
    const qr = g.op('Mul', [rope(qh), scale]);
    const kAll = g.op('Concat', [io.pastKey, io.presentKey], { axis: 2 }); // [B,Hkv,T,Dh]
    const vAll = g.op('Concat', [io.pastValue, io.presentValue], { axis: 2 });
    let attnOut: string; // [B,S,Hq*Dh]
    if (attention === 'matmul') {
      const qg = G > 1 ? g.op('Reshape', [qr, g.ints([0, Hkv, -1, Dh])]) : qr; // [B,Hkv,G*S,Dh]
      const scores = g.op('MatMul', [qg, g.op('Transpose', [kAll], { perm: [0, 1, 3, 2] })]);
      const probs = g.op('Softmax', [g.op('Add', [scores, mask])], { axis: -1 });
      let ctx = g.op('MatMul', [probs, vAll]); // [B,Hkv,G*S,Dh]
      if (G > 1) ctx = g.op('Reshape', [ctx, g.ints([0, Hq, -1, Dh])]);
      attnOut = g.op('Reshape', [g.op('Transpose', [ctx], { perm: perm0213 }), g.ints([0, 0, qd])]);
    } else if (attention === 'gqa') {
      const toBsd = (t: string, heads: number) => g.op('Reshape', [g.op('Transpose', [t], { perm: perm0213 }), g.ints([0, 0, heads * Dh])]);
      const qkv = [toBsd(qr, Hq), toBsd(io.presentKey, Hkv), toBsd(io.presentValue, Hkv)];
      const gqaIn = [...qkv, io.pastKey, io.pastValue, gqaSeqlens!, gqaTotal!, '', '', '', maskIn];
      attnOut = g.node('GroupQueryAttention', gqaIn, 3, { num_heads: Hq, kv_num_heads: Hkv, scale: { float: 1 } }, 'com.microsoft')[0];
    } else {
      const rep = (t: string) =>
        G > 1 ? g.op('Reshape', [g.op('Expand', [g.op('Unsqueeze', [t, g.ints([2])]), g.ints([1, 1, G, 1, 1])]), g.ints([0, Hq, -1, Dh])]) : t;
      const qBsd = g.op('Reshape', [g.op('Transpose', [qr], { perm: perm0213 }), g.ints([0, 0, qd])]);
      attnOut = g.node('MultiHeadAttention', [qBsd, rep(kAll), rep(vAll), '', '', mask], 1, { num_heads: Hq, scale: { float: 1 } }, 'com.microsoft')[0];
    }
    const o = linear(g, attnOut, `${p}.self_attn.o_proj`, W.get(`${p}.self_attn.o_proj.weight`, [H, qd]), H, qd);
    h = g.op('Add', [h, o]);
    const x2 = rmsNorm(h, `${p}.post_attention_layernorm.weight`);
    const I = a.intermediate_size;
    const gw = W.get(`${p}.mlp.gate_proj.weight`, [I, H]);
    const uw = W.get(`${p}.mlp.up_proj.weight`, [I, H]);
    const [gate, up] = opts.fuseLinears
      ? fusedLinear(
          g,
          linear,
          x2,
          `${p}.mlp.gate_up_proj`,
          [
            { rows: I, w: gw },
            { rows: I, w: uw },
          ],
          H,
        )
      : [linear(g, x2, `${p}.mlp.gate_proj`, gw, I, H), linear(g, x2, `${p}.mlp.up_proj`, uw, I, H)];
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    const down = linear(g, act, `${p}.mlp.down_proj`, W.get(`${p}.mlp.down_proj.weight`, [H, I]), H, I);
    h = g.op('Add', [h, down]);
  }
  const hn = rmsNorm(h, 'model.norm.weight');
  const head = a.tie_word_embeddings ? embed : W.get('lm_head.weight', [vocabSize, H]);
  const logitsW = g.floatInit('lm_head.weight_t', [H, vocabSize], transpose2d(head, vocabSize, H));
  // Format v2: the LM head runs only on the positions `logit_index` selects (none for KV-only
  // forwards), and the draw statistics are computed in the graph (logit-head.ts).
  g.node('MatMul', [gatherDrawRows(g, hn), logitsW], [DRAW_IO.logits]);
  emitDrawStatistics(g, DRAW_IO.logits, vocabSize);

  const inputs: IoSpec[] = [
    { name: GRAPH_IO.inputs.inputIds, type: TensorType.INT64, shape: ['batch', 'seq'] },
    { name: GRAPH_IO.inputs.positionIds, type: TensorType.INT64, shape: ['batch', 'seq'] },
    { name: GRAPH_IO.inputs.attentionMask, type: TensorType.FLOAT, shape: ['batch', 1, 'seq', 'total'] },
    ...drawInputSpecs(),
  ];
  const outputs: IoSpec[] = drawOutputSpecs(vocabSize);
  for (let i = 0; i < L; i++) {
    const io = layerIoNames(i);
    const past = (name: string): IoSpec => ({ name, type: TensorType.FLOAT, shape: ['batch', Hkv, 'past', Dh] });
    const present = (name: string): IoSpec => ({ name, type: TensorType.FLOAT, shape: ['batch', Hkv, 'seq', Dh] });
    inputs.push(past(io.pastKey), past(io.pastValue));
    outputs.push(present(io.presentKey), present(io.presentValue));
  }
  const model = g.toModel(inputs, outputs, { 'dllm-farm.attention': attention, ...(opts.metadata ?? {}) });
  const weightBytes = g.weightBytes;
  if (!opts.outFile) return { bytes: model.toBytes(), files: [], weightBytes, externalData: false };
  writeChunks(opts.outFile, model);
  return { files: dataFile ? [opts.outFile, dataFile] : [opts.outFile], weightBytes, externalData: useExternal };
}
