// The quantizer's view of an ONNX model, on libs/onnx's messages generated from onnx.proto: nodes
// (with their index), initializers (inline or external data), graph inputs/outputs and opsets,
// plus an editor that replaces nodes and initializers and leaves everything else untouched.
//
// The quantizer does not rebuild a model: every message and field it does not edit (opsets,
// metadata, value_info, fields newer than our onnx.proto, which @bufbuild/protobuf keeps as
// unknown fields) is written back as it was read. So any dllm-farm model (or any ONNX model with
// MatMul on constant weights) can be quantized whatever wrote it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { clearField, create } from '@bufbuild/protobuf';
import {
  ExternalDataWriter,
  OperatorSetIdProtoSchema,
  RangeReader,
  TensorProtoSchema,
  TensorType,
  decodeModel,
  encodeModel,
  externalRef,
  nodeProto,
  readModel,
  readValueInfo,
  tensorBytes as readTensorBytes,
  tensorProto,
  valueInfoProto,
  type ModelProto,
  type NodeProto,
  type OnnxIo,
  type TensorProto,
  type ValueInfoProto,
} from '@dllm/onnx';

/** Element types the quantizer reads and writes (TensorProto.DataType numbers). */
export const DataType = TensorType;

export interface OnnxNode {
  /** position in graph.node (the key of GraphEdit.replaceNodes). */
  index: number;
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
}

export interface OnnxTensorInfo {
  name: string;
  dims: number[];
  dataType: number;
  proto: TensorProto;
}

/** A graph input/output: numbers for fixed dims, strings for symbolic ones, null when unknown; shape null = rank unknown. */
export type OnnxValueInfo = OnnxIo;

export interface OnnxModel {
  /** directory that external data locations are relative to. */
  baseDir: string;
  proto: ModelProto;
  nodes: OnnxNode[];
  initializers: Map<string, OnnxTensorInfo>;
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  opsets: { domain: string; version: number }[];
  /** reads external data by ranges (a data file may be larger than 2 GiB). */
  reader: RangeReader;
}

/** Wraps a parsed model. Throws when it has no graph. */
export function onnxModelView(proto: ModelProto, baseDir = '.'): OnnxModel {
  const g = proto.graph;
  if (!g) throw new Error('ONNX model has no graph');
  const m: OnnxModel = { baseDir, proto, nodes: [], initializers: new Map(), inputs: [], outputs: [], opsets: [], reader: new RangeReader() };
  g.node.forEach((n, index) => m.nodes.push({ index, name: n.name, opType: n.opType, domain: n.domain, inputs: n.input, outputs: n.output }));
  for (const t of g.initializer) m.initializers.set(t.name, { name: t.name, dims: t.dims.map(Number), dataType: t.dataType, proto: t });
  m.inputs = g.input.map(readValueInfo);
  m.outputs = g.output.map(readValueInfo);
  m.opsets = proto.opsetImport.map((o) => ({ domain: o.domain, version: Number(o.version) }));
  return m;
}

/** Parses model bytes; external data locations resolve against `baseDir`. */
export function parseOnnx(bytes: Uint8Array, baseDir = '.'): OnnxModel {
  return onnxModelView(decodeModel(bytes), baseDir);
}

/** Reads model.onnx (the protobuf part only: external data is read later, by ranges). */
export function loadOnnx(file: string): OnnxModel {
  return onnxModelView(readModel(file), path.dirname(file));
}

/** The tensor's bytes (raw_data, typed repeated fields, or its external data range), little-endian. */
export function tensorBytes(model: OnnxModel, t: OnnxTensorInfo): Uint8Array {
  return readTensorBytes(t.proto, model.baseDir, model.reader);
}

/** A float32 initializer as a fresh array. Throws when it is missing or not float32. */
export function floatTensor(model: OnnxModel, name: string): { dims: number[]; data: Float32Array } {
  const t = model.initializers.get(name);
  if (!t) throw new Error(`no initializer named ${name}`);
  if (t.dataType !== DataType.FLOAT) throw new Error(`initializer ${name} is not float32 (type ${t.dataType})`);
  const b = tensorBytes(model, t);
  const copy = new Float32Array(b.byteLength / 4);
  new Uint8Array(copy.buffer).set(b);
  return { dims: t.dims, data: copy };
}

// ---- builders ------------------------------------------------------------------------------

export type AttrValue = number | number[] | string | { float: number };

export interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attrs?: Record<string, AttrValue>;
}

/** NodeProto from a spec. */
export function encodeNode(n: NodeSpec): NodeProto {
  return nodeProto(n.opType, n.inputs, n.outputs, n.name ?? '', n.attrs ?? {}, n.domain ?? '');
}

/** An inline TensorProto (raw_data) holding `data`'s bytes. */
export function encodeTensor(name: string, dataType: number, dims: number[], data: ArrayBufferView): TensorProto {
  return tensorProto(name, dataType, dims, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

/** A graph input/output declaration; symbolic dims for sizes that vary; no shape = rank unknown. */
export function encodeValueInfo(name: string, elemType: number, shape?: (number | string)[]): ValueInfoProto {
  return valueInfoProto(name, elemType, shape);
}

// ---- editing -------------------------------------------------------------------------------

/**
 * A shallow copy of a generated message: same prototype (proto2 defaults), same own fields (so
 * field presence and unknown fields carry over); sub-messages are shared, not copied.
 */
export function shallowCopy<T extends object>(m: T, patch: Partial<T> = {}): T {
  return Object.assign(Object.create(Object.getPrototypeOf(m) as object) as T, m, patch);
}

export interface GraphEdit {
  /** node index -> nodes that replace it (empty array removes it). */
  replaceNodes?: Map<number, NodeProto[]>;
  removeInitializers?: Set<string>;
  addInitializers?: TensorProto[];
  addOutputs?: ValueInfoProto[];
  /** opsets to add when the model does not import the domain yet. */
  addOpsets?: { domain: string; version: number }[];
}

/**
 * The edited model as a new ModelProto that shares every unedited message with `model.proto`
 * (which is not modified). Initializers kept from an external data file still point into it.
 */
export function editOnnx(model: OnnxModel, edit: GraphEdit): ModelProto {
  const src = model.proto;
  const g = src.graph!;
  const node: NodeProto[] = [];
  g.node.forEach((n, i) => node.push(...(edit.replaceNodes?.get(i) ?? [n])));
  const initializer = g.initializer.filter((t) => !edit.removeInitializers?.has(t.name)).concat(edit.addInitializers ?? []);
  const graph = shallowCopy(g, { node, initializer, output: [...g.output, ...(edit.addOutputs ?? [])] });
  const opsetImport = [...src.opsetImport];
  for (const o of edit.addOpsets ?? []) {
    if (!model.opsets.some((x) => x.domain === o.domain)) opsetImport.push(create(OperatorSetIdProtoSchema, { domain: o.domain, version: BigInt(o.version) }));
  }
  return shallowCopy(src, { graph, opsetImport });
}

/** A copy of an initializer whose data lives elsewhere, with `set` applied (the original is not modified). */
function withData(t: TensorProto, set: (c: TensorProto) => void): TensorProto {
  const c = shallowCopy(t, { externalData: [] });
  clearField(c, TensorProtoSchema.field.rawData);
  clearField(c, TensorProtoSchema.field.dataLocation);
  set(c);
  return c;
}

/**
 * Re-serialises the model with the edits, every initializer inline (external data is read by
 * ranges). For models whose result fits protobuf's 2 GiB; use writeOnnx for large ones.
 */
export function rewriteOnnx(model: OnnxModel, edit: GraphEdit): Uint8Array {
  const out = editOnnx(model, edit);
  out.graph!.initializer = out.graph!.initializer.map((t) =>
    externalRef(t) ? withData(t, (c) => (c.rawData = readTensorBytes(t, model.baseDir, model.reader))) : t,
  );
  return encodeModel(out);
}

/** Initializers at least this large go to the external data file when writeOnnx writes one. */
export const EXTERNAL_MIN_BYTES = 1024;

/**
 * Writes the edited model to `file`. With `externalData`, every initializer of at least
 * EXTERNAL_MIN_BYTES goes to `<file>.data` (source external data is copied range by range, never
 * loaded whole); otherwise everything is inline. Returns the bytes written (model + data).
 */
export function writeOnnx(
  model: OnnxModel,
  edit: GraphEdit,
  file: string,
  { externalData = false }: { externalData?: boolean } = {},
): { bytes: number; dataFile: string | null } {
  if (!externalData) {
    const bytes = rewriteOnnx(model, edit);
    fs.writeFileSync(file, bytes);
    return { bytes: bytes.length, dataFile: null };
  }
  const out = editOnnx(model, edit);
  const g = out.graph!;
  const data = new ExternalDataWriter(`${file}.data`);
  try {
    g.initializer = g.initializer.map((t) => {
      const ext = externalRef(t);
      if (ext) {
        const srcFile = path.resolve(model.baseDir, ext.location);
        const length = ext.length ?? model.reader.size(srcFile) - ext.offset;
        const ref = data.appendRange(model.reader, srcFile, ext.offset, length);
        return withData(t, (c) => {
          c.externalData = tensorProto(t.name, t.dataType, [], null, ref).externalData;
          c.dataLocation = 1;
        });
      }
      const raw = readTensorBytes(t, model.baseDir, model.reader);
      if (raw.length < EXTERNAL_MIN_BYTES) return t;
      const ref = data.append(raw);
      return withData(t, (c) => {
        c.floatData = [];
        c.int32Data = [];
        c.int64Data = [];
        c.doubleData = [];
        c.uint64Data = [];
        c.externalData = tensorProto(t.name, t.dataType, [], null, ref).externalData;
        c.dataLocation = 1;
      });
    });
  } finally {
    data.close();
  }
  const bytes = encodeModel(out);
  fs.writeFileSync(file, bytes);
  return { bytes: bytes.length + data.size, dataFile: data.file };
}
