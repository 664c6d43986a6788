// The graph-building helper the decoder builder uses (OnnxGraph), on libs/onnx's messages
// generated from onnx.proto. Tensor/node/attribute/value-info builders and model inspection are
// libs/onnx's, re-exported here so builder.ts and tests keep importing them from './onnx'.
import { create } from '@bufbuild/protobuf';
import * as fs from 'node:fs';
import {
  ExternalDataWriter,
  GraphProtoSchema,
  TensorType,
  encodeModel,
  modelProto,
  nodeProto,
  tensorProto,
  valueInfoProto,
  type AttrValue,
  type IoSpec,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from '@dllm/onnx';

export { TensorType, attributeProto, inspectOnnx, nodeProto, tensorProto, valueInfoProto } from '@dllm/onnx';
export type { AttrValue, Dim, ExternalRef, IoSpec, OnnxIo, OnnxSummary, TensorTypeId } from '@dllm/onnx';

/** A finished model (OnnxGraph.toModel): the ModelProto, serialisable with toBytes or writeChunks. */
export class BuiltModel {
  constructor(readonly proto: ModelProto) {}
  /** The serialised model (below protobuf's 2 GiB limit; weights above it go to external data). */
  toBytes(): Uint8Array {
    return encodeModel(this.proto);
  }
}

/** Writes a finished model to `file` (its external data file, if any, is already written). */
export function writeChunks(file: string, m: BuiltModel): void {
  fs.writeFileSync(file, m.toBytes());
}

/**
 * Accumulates nodes and initializers. Initializer data is either kept inline or appended to an
 * external data file as it arrives (so a large model's weights are written once and not held).
 */
export class OnnxGraph {
  private readonly nodes: NodeProto[] = [];
  private readonly inits: TensorProto[] = [];
  private readonly names = new Set<string>();
  private counter = 0;
  private readonly data: ExternalDataWriter | null;
  readonly opsetDomains = new Map<string, number>([['', 17]]);
  /** Bytes of initializer data written so far (inline or external). */
  weightBytes = 0;

  /** externalDataPath: absolute path of the data file to stream weights into, or null for inline. */
  constructor(
    readonly name: string,
    externalDataPath: string | null = null,
  ) {
    this.data = externalDataPath ? new ExternalDataWriter(externalDataPath) : null;
  }

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    let n: string;
    do n = `${prefix}_${this.counter++}`;
    while (this.names.has(n));
    return n;
  }

  node(
    opType: string,
    inputs: readonly string[],
    outputs: number | readonly string[],
    attrs: Record<string, AttrValue> = {},
    domain = '',
    prefix?: string,
  ): string[] {
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh(prefix ?? opType.toLowerCase())) : [...outputs];
    for (const o of outs) this.names.add(o);
    if (domain && !this.opsetDomains.has(domain)) this.opsetDomains.set(domain, 1);
    this.nodes.push(nodeProto(opType, inputs, outs, this.fresh(`n_${opType}`), attrs, domain));
    return outs;
  }

  /** One-output node. */
  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, domain = '', name?: string): string {
    return this.node(opType, inputs, name ? [name] : 1, attrs, domain)[0];
  }

  /** Adds an initializer; weights at least `externalMin` bytes go to the external file when there is one. */
  initializer(name: string, dataType: number, dims: readonly number[], data: Uint8Array, externalMin = 1024): string {
    if (this.names.has(name)) throw new Error(`duplicate ONNX value name ${name}`);
    this.names.add(name);
    this.weightBytes += data.length;
    if (this.data && data.length >= externalMin) this.inits.push(tensorProto(name, dataType, dims, null, this.data.append(data)));
    else this.inits.push(tensorProto(name, dataType, dims, data));
    return name;
  }

  floatInit(name: string, dims: readonly number[], data: Float32Array): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`initializer ${name}: ${data.length} values for shape [${dims.join(',')}]`);
    return this.initializer(name, TensorType.FLOAT, dims, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  /** A small int64 constant (shapes, axes). */
  ints(values: readonly number[], name?: string, scalar = false): string {
    const key = `${scalar ? 's' : 'v'}:${values.join(',')}`;
    if (!name && this.intConsts.has(key)) return this.intConsts.get(key)!;
    const b = new BigInt64Array(values.map((v) => BigInt(v)));
    const n = this.initializer(name ?? this.fresh('c_i64'), TensorType.INT64, scalar ? [] : [values.length], new Uint8Array(b.buffer), Infinity);
    if (!name) this.intConsts.set(key, n);
    return n;
  }
  private readonly intConsts = new Map<string, string>();

  /** A float32 scalar or vector constant. */
  floats(values: readonly number[], name?: string, scalar = false): string {
    const b = new Float32Array(values);
    return this.initializer(name ?? this.fresh('c_f32'), TensorType.FLOAT, scalar ? [] : [values.length], new Uint8Array(b.buffer), Infinity);
  }

  /** Finishes the model. Closes the external data file. */
  toModel(inputs: IoSpec[], outputs: IoSpec[], meta: Record<string, string> = {}, producer = 'dllm-farm'): BuiltModel {
    this.data?.close();
    const g = create(GraphProtoSchema, {
      node: this.nodes,
      name: this.name,
      initializer: this.inits,
      input: inputs.map((i) => valueInfoProto(i.name, i.type, i.shape)),
      output: outputs.map((o) => valueInfoProto(o.name, o.type, o.shape)),
    });
    return new BuiltModel(modelProto(g, this.opsetDomains, meta, producer));
  }
}
