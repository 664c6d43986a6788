// Weight-only quantization of an ONNX model: every MatMul whose right-hand side is a constant float
// [K, N] weight is replaced, in place in the node list, by
//   int8:       DequantizeLinear(int8 [K,N], scale [N], axis=1) -> MatMul
//   int4/int3:  com.microsoft MatMulNBits(A, B, scales, zero_points)
// Everything else in the model (embeddings, norms, rotary tables, attention) stays as it was.
import { z } from 'zod';
import type { NodeProto, TensorProto } from '@dllm/onnx';
import { DataType, type GraphEdit, type OnnxModel, type OnnxNode, encodeNode, encodeTensor, floatTensor, rewriteOnnx } from './onnx';
import { type BlockWeights, packMatMulNBits, quantizeBlockwise, quantizeInt8PerChannel } from './rtn';

export const SCHEMES = ['int8', 'int4', 'int3'] as const;
export type Scheme = (typeof SCHEMES)[number];
export const METHODS = ['rtn', 'gptq'] as const;
export type Method = (typeof METHODS)[number];
export const GROUP_SIZES = [32, 64, 128] as const;

export const SCHEME_BITS: Record<Scheme, number> = { int8: 8, int4: 4, int3: 3 };

/** What the manifest's `quantization` field records. */
export const quantizationRecordSchema = z.object({
  scheme: z.enum(SCHEMES),
  bits: z.number().int(),
  /** K values per scale; null for int8 (one scale per output channel). */
  group_size: z.number().int().positive().nullable(),
  method: z.enum(METHODS),
  /** weights of linear layers left in float32 on purpose. */
  kept_fp32: z.array(z.string()),
  /** MatMulNBits accuracy_level (0: float math, 4: int8 activations); null for int8. */
  accuracy_level: z.number().int().min(0).max(4).nullable().optional(),
  /** the onnxruntime operators that run the layers. */
  kernel: z.enum(['DequantizeLinear+MatMul', 'MatMulNBits']).optional(),
  /** how the codes are stored when onnxruntime has no kernel for `bits`. */
  container_bits: z.number().int().optional(),
});
export type QuantizationRecord = z.infer<typeof quantizationRecordSchema>;

export const quantizeOptionsSchema = z
  .object({
    scheme: z.enum(SCHEMES, { error: (i) => `--weights must be one of ${SCHEMES.join(', ')}, got ${JSON.stringify(i.input)}` }),
    groupSize: z
      .number()
      .int()
      .refine((g) => (GROUP_SIZES as readonly number[]).includes(g), { error: `--group-size must be one of ${GROUP_SIZES.join(', ')}` })
      .default(32),
    method: z.enum(METHODS, { error: (i) => `--method must be one of ${METHODS.join(', ')}, got ${JSON.stringify(i.input)}` }).default('rtn'),
    /** keep the LM head (the MatMul producing the `logits` output) in float32: default, from bench:quant
     *  (int4 RTN: 89% -> 95% outputs identical to fp32 on string tasks, for 4% more file). */
    keepLmHead: z.boolean().default(true),
    /** extra weight-name substrings to keep in float32. */
    keep: z.array(z.string().min(1)).default([]),
    /** MatMulNBits accuracy_level: 0 keeps float activations; 4 lets the CPU kernel quantize them to int8. */
    accuracyLevel: z
      .number({ error: '--accuracy-level must be an integer 0-4' })
      .int()
      .min(0, { error: '--accuracy-level must be 0-4' })
      .max(4, { error: '--accuracy-level must be 0-4' })
      .default(4),
    /** int8 as DequantizeLinear -> MatMul (per channel) or as MatMulNBits bits=8 (per block). */
    int8Kernel: z.enum(['dequantize', 'matmulnbits']).default('dequantize'),
  })
  .strict();
export type QuantizeOptions = z.input<typeof quantizeOptionsSchema>;
export type ResolvedQuantizeOptions = z.output<typeof quantizeOptionsSchema>;

export function resolveQuantizeOptions(opts: QuantizeOptions): ResolvedQuantizeOptions {
  const r = quantizeOptionsSchema.safeParse(opts);
  if (!r.success) throw new Error(r.error.issues.map((i) => i.message).join('; '));
  if (r.data.method === 'gptq' && r.data.scheme === 'int8' && r.data.int8Kernel === 'dequantize')
    throw new Error('--method gptq needs a block scheme (int4, int3, or int8 with --int8-kernel matmulnbits); per-channel int8 is RTN only');
  return r.data;
}

export interface LinearLayer {
  node: OnnxNode;
  weight: string;
  K: number;
  N: number;
  isLmHead: boolean;
}

/** MatMul nodes whose second input is a constant float32 2-D initializer. */
export function findLinears(model: OnnxModel): LinearLayer[] {
  const out: LinearLayer[] = [];
  const graphOutputs = new Set(model.outputs.map((o) => o.name));
  for (const node of model.nodes) {
    if (node.opType !== 'MatMul' || (node.domain !== '' && node.domain !== 'ai.onnx')) continue;
    const t = model.initializers.get(node.inputs[1]);
    if (!t || t.dataType !== DataType.FLOAT || t.dims.length !== 2) continue;
    const isLmHead = graphOutputs.has(node.outputs[0]) || /lm_head/i.test(node.inputs[1]);
    out.push({ node, weight: node.inputs[1], K: t.dims[0], N: t.dims[1], isLmHead });
  }
  return out;
}

/** Replaces a weight before it is quantized (GPTQ plugs in here); returns the weights to store. */
export type WeightQuantizer = (layer: LinearLayer, w: Float32Array, opts: ResolvedQuantizeOptions) => QuantizedWeight;

export type QuantizedWeight = { kind: 'int8'; q: Int8Array; scales: Float32Array } | { kind: 'block'; q: BlockWeights };

export const rtnQuantizer: WeightQuantizer = (layer, w, opts) => {
  if (opts.scheme === 'int8' && opts.int8Kernel === 'dequantize') {
    const q = quantizeInt8PerChannel(w, layer.K, layer.N);
    return { kind: 'int8', q: q.q, scales: q.scales };
  }
  return { kind: 'block', q: quantizeBlockwise(w, layer.K, layer.N, { bits: SCHEME_BITS[opts.scheme], blockSize: opts.groupSize }) };
};

export interface LayerReport {
  weight: string;
  K: number;
  N: number;
  quantized: boolean;
  fp32Bytes: number;
  storedBytes: number;
}

/** The quantization of a model as an edit of its graph (apply with rewriteOnnx or writeOnnx). */
export interface QuantizePlan {
  edit: GraphEdit;
  record: QuantizationRecord;
  layers: LayerReport[];
}

export interface QuantizeResult {
  bytes: Uint8Array;
  record: QuantizationRecord;
  layers: LayerReport[];
}

/** Quantizes a model in memory and returns the new model's bytes (inline weights: below 2 GiB). */
export function quantizeOnnx(model: OnnxModel, options: QuantizeOptions, quantizer: WeightQuantizer = rtnQuantizer): QuantizeResult {
  const { edit, record, layers } = planQuantization(model, options, quantizer);
  return { bytes: rewriteOnnx(model, edit), record, layers };
}

/**
 * Quantizes every linear layer's weight (read one at a time, external data by ranges) and returns
 * the graph edit that swaps them in, the manifest record and a per-layer report. Throws when the
 * model has no linear layer or the scheme needs a newer opset.
 */
export function planQuantization(model: OnnxModel, options: QuantizeOptions, quantizer: WeightQuantizer = rtnQuantizer): QuantizePlan {
  const opts = resolveQuantizeOptions(options);
  const linears = findLinears(model);
  if (linears.length === 0) throw new Error('model has no MatMul with a constant float32 weight: nothing to quantize');
  const dq = opts.scheme === 'int8' && opts.int8Kernel === 'dequantize';
  if (dq) {
    const v = model.opsets.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 0;
    if (v < 13) throw new Error(`int8 needs ONNX opset >= 13 (per-axis DequantizeLinear); model imports opset ${v}`);
  }
  // How many nodes read each initializer: a weight shared with another node (tied embeddings) stays.
  const uses = new Map<string, number>();
  for (const n of model.nodes) for (const i of n.inputs) uses.set(i, (uses.get(i) ?? 0) + 1);

  const replaceNodes = new Map<number, NodeProto[]>();
  const addInitializers: TensorProto[] = [];
  const removeInitializers = new Set<string>();
  const done = new Map<string, string[]>(); // weight -> names of the quantized tensors
  const kept: string[] = [];
  const layers: LayerReport[] = [];
  const bits = SCHEME_BITS[opts.scheme];

  for (const layer of linears) {
    const { node, weight, K, N } = layer;
    const keep = (layer.isLmHead && opts.keepLmHead) || opts.keep.some((s) => weight.includes(s));
    if (keep) {
      if (!kept.includes(weight)) kept.push(weight);
      layers.push({ weight, K, N, quantized: false, fp32Bytes: 4 * K * N, storedBytes: 4 * K * N });
      continue;
    }
    const base = `${weight}.${opts.scheme}`;
    let tensors = done.get(weight);
    let stored = 0;
    if (!tensors) {
      const w = floatTensor(model, weight).data;
      const q = quantizer(layer, w, opts);
      if (q.kind === 'int8') {
        tensors = [`${base}.q`, `${base}.scale`];
        addInitializers.push(encodeTensor(tensors[0], DataType.INT8, [K, N], q.q), encodeTensor(tensors[1], DataType.FLOAT, [N], q.scales));
        stored = q.q.byteLength + q.scales.byteLength;
      } else {
        const p = packMatMulNBits(q.q);
        tensors = [`${base}.B`, `${base}.scales`, `${base}.zp`];
        addInitializers.push(
          encodeTensor(tensors[0], DataType.UINT8, p.bDims, p.B),
          encodeTensor(tensors[1], DataType.FLOAT, [p.scales.length], p.scales),
          encodeTensor(tensors[2], DataType.UINT8, [p.zeroPoints.length], p.zeroPoints),
        );
        stored = p.B.byteLength + p.scales.byteLength + p.zeroPoints.byteLength;
      }
      done.set(weight, tensors);
      if ((uses.get(weight) ?? 0) <= countLinearUses(linears, weight)) removeInitializers.add(weight);
    }
    layers.push({ weight, K, N, quantized: true, fp32Bytes: 4 * K * N, storedBytes: stored });
    const name = node.name || `${weight}.matmul`;
    if (dq) {
      const deq = `${base}.dequant.${node.index}`;
      replaceNodes.set(node.index, [
        encodeNode({ opType: 'DequantizeLinear', inputs: [tensors[0], tensors[1]], outputs: [deq], name: `${name}.dq`, attrs: { axis: 1 } }),
        encodeNode({ opType: 'MatMul', inputs: [node.inputs[0], deq], outputs: node.outputs, name }),
      ]);
    } else {
      replaceNodes.set(node.index, [
        encodeNode({
          opType: 'MatMulNBits',
          domain: 'com.microsoft',
          inputs: [node.inputs[0], ...tensors],
          outputs: node.outputs,
          name,
          attrs: { K, N, bits: bits === 3 ? 4 : bits, block_size: opts.groupSize, accuracy_level: opts.accuracyLevel },
        }),
      ]);
    }
  }
  const edit: GraphEdit = { replaceNodes, addInitializers, removeInitializers, addOpsets: dq ? [] : [{ domain: 'com.microsoft', version: 1 }] };
  const record: QuantizationRecord = {
    scheme: opts.scheme,
    bits,
    group_size: dq ? null : opts.groupSize,
    method: opts.method,
    kept_fp32: kept,
    accuracy_level: dq ? null : opts.accuracyLevel,
    kernel: dq ? 'DequantizeLinear+MatMul' : 'MatMulNBits',
    ...(bits === 3 ? { container_bits: 4 } : {}),
  };
  return { edit, record, layers };
}

function countLinearUses(linears: LinearLayer[], weight: string): number {
  return linears.filter((l) => l.weight === weight).length;
}

/** The suffix that makes a quantized model's version (the engine pool key) differ from fp32's. */
export function versionSuffix(r: Pick<QuantizationRecord, 'scheme' | 'group_size' | 'method'>): string {
  return `${r.scheme}${r.group_size ? `-g${r.group_size}` : ''}-${r.method}`;
}
