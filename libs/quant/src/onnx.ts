// A thin ONNX model view on top of the field-preserving protobuf reader: nodes, initializers
// (inline or external data), graph inputs/outputs and opsets, plus a rewriter that replaces nodes
// and initializers and leaves everything else untouched.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PbMessage, nodeProto, tensorProto, valueInfoProto } from '@dllm/model';
import { type Field, readFields, repeatedInts, utf8 } from './proto';

export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10 } as const;

export interface OnnxNode {
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
  fields: Field[];
}

export interface OnnxValueInfo {
  name: string;
  elemType: number;
  /** numbers for fixed dims, strings for symbolic ones, null when unknown. */
  shape: (number | string | null)[] | null;
}

export interface OnnxModel {
  /** directory that external data locations are relative to. */
  baseDir: string;
  modelFields: Field[];
  graphFields: Field[];
  nodes: OnnxNode[];
  initializers: Map<string, OnnxTensorInfo>;
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  opsets: { domain: string; version: number }[];
}

function parseNode(bytes: Uint8Array, index: number): OnnxNode {
  const n: OnnxNode = { index, name: '', opType: '', domain: '', inputs: [], outputs: [] };
  for (const f of readFields(bytes)) {
    if (f.no === 1) n.inputs.push(utf8(f.bytes));
    else if (f.no === 2) n.outputs.push(utf8(f.bytes));
    else if (f.no === 3) n.name = utf8(f.bytes);
    else if (f.no === 4) n.opType = utf8(f.bytes);
    else if (f.no === 7) n.domain = utf8(f.bytes);
  }
  return n;
}

function parseTensorInfo(bytes: Uint8Array): OnnxTensorInfo {
  const fields = readFields(bytes);
  let name = '';
  let dataType = 0;
  for (const f of fields) {
    if (f.no === 8) name = utf8(f.bytes);
    else if (f.no === 2) dataType = Number(f.int);
  }
  return { name, dims: repeatedInts(fields, 1).map(Number), dataType, fields };
}

function parseValueInfo(bytes: Uint8Array): OnnxValueInfo {
  const v: OnnxValueInfo = { name: '', elemType: 0, shape: null };
  for (const f of readFields(bytes)) {
    if (f.no === 1) v.name = utf8(f.bytes);
    if (f.no !== 2) continue;
    for (const t of readFields(f.bytes)) {
      if (t.no !== 1) continue; // tensor_type
      for (const tt of readFields(t.bytes)) {
        if (tt.no === 1) v.elemType = Number(tt.int);
        if (tt.no === 2) {
          v.shape = [];
          for (const d of readFields(tt.bytes)) {
            if (d.no !== 1) continue;
            let dim: number | string | null = null;
            for (const df of readFields(d.bytes)) {
              if (df.no === 1) dim = Number(df.int);
              if (df.no === 2) dim = utf8(df.bytes);
            }
            v.shape.push(dim);
          }
        }
      }
    }
  }
  return v;
}

export function parseOnnx(bytes: Uint8Array, baseDir = '.'): OnnxModel {
  const modelFields = readFields(bytes);
  const graphField = modelFields.find((f) => f.no === 7);
  if (!graphField) throw new Error('ONNX model has no graph');
  const graphFields = readFields(graphField.bytes);
  const m: OnnxModel = { baseDir, modelFields, graphFields, nodes: [], initializers: new Map(), inputs: [], outputs: [], opsets: [] };
  for (const f of graphFields) {
    if (f.no === 1) m.nodes.push(parseNode(f.bytes, m.nodes.length));
    else if (f.no === 5) {
      const t = parseTensorInfo(f.bytes);
      m.initializers.set(t.name, t);
    } else if (f.no === 11) m.inputs.push(parseValueInfo(f.bytes));
    else if (f.no === 12) m.outputs.push(parseValueInfo(f.bytes));
  }
  for (const f of modelFields) {
    if (f.no !== 8) continue;
    let domain = '';
    let version = 0;
    for (const o of readFields(f.bytes)) {
      if (o.no === 1) domain = utf8(o.bytes);
      if (o.no === 2) version = Number(o.int);
    }
    m.opsets.push({ domain, version });
  }
  return m;
}

export function loadOnnx(file: string): OnnxModel {
  return parseOnnx(fs.readFileSync(file), path.dirname(file));
}

const externalCache = new Map<string, Buffer>();

/** The tensor's bytes (raw_data, typed repeated fields, or external data), little-endian. */
export function tensorBytes(model: OnnxModel, t: OnnxTensorInfo): Uint8Array {
  let location = 0;
  const ext: Record<string, string> = {};
  for (const f of t.fields) {
    if (f.no === 9) return f.bytes;
    if (f.no === 14) location = Number(f.int);
    if (f.no === 13) {
      let k = '';
      let v = '';
      for (const e of readFields(f.bytes)) {
        if (e.no === 1) k = utf8(e.bytes);
        if (e.no === 2) v = utf8(e.bytes);
      }
      ext[k] = v;
    }
  }
  if (location === 1) {
    if (!ext.location) throw new Error(`initializer ${t.name}: external data without a location`);
    const file = path.resolve(model.baseDir, ext.location);
    let data = externalCache.get(file);
    if (!data) {
      if (!fs.existsSync(file)) throw new Error(`initializer ${t.name}: external data file not found: ${file}`);
      data = fs.readFileSync(file);
      externalCache.set(file, data);
    }
    const offset = Number(ext.offset ?? 0);
    const length = ext.length !== undefined ? Number(ext.length) : data.length - offset;
    return new Uint8Array(data.buffer, data.byteOffset + offset, length);
  }
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.dataType === DataType.FLOAT) {
    const f4 = t.fields.find((f) => f.no === 4);
    if (!f4 && count === 0) return new Uint8Array(0);
    if (!f4) throw new Error(`initializer ${t.name}: no data`);
    if (f4.wire === 2) return f4.bytes;
    const out = new Float32Array(count);
    let i = 0;
    for (const f of t.fields) if (f.no === 4) new Uint32Array(out.buffer, 4 * i++, 1)[0] = Number(f.int);
    return new Uint8Array(out.buffer);
  }
  if (t.dataType === DataType.INT64) {
    const vals = repeatedInts(t.fields, 7);
    return new Uint8Array(BigInt64Array.from(vals).buffer);
  }
  if (t.dataType === DataType.INT32 || t.dataType === DataType.INT8 || t.dataType === DataType.UINT8) {
    const vals = repeatedInts(t.fields, 5).map(Number);
    if (t.dataType === DataType.INT32) return new Uint8Array(Int32Array.from(vals).buffer);
    return t.dataType === DataType.INT8 ? new Uint8Array(Int8Array.from(vals).buffer) : Uint8Array.from(vals);
  }
  throw new Error(`initializer ${t.name}: unsupported data type ${t.dataType} without raw_data`);
}

export function floatTensor(model: OnnxModel, name: string): { dims: number[]; data: Float32Array } {
  const t = model.initializers.get(name);
  if (!t) throw new Error(`no initializer named ${name}`);
  if (t.dataType !== DataType.FLOAT) throw new Error(`initializer ${name} is not float32 (type ${t.dataType})`);
  const b = tensorBytes(model, t);
  const copy = new Float32Array(b.byteLength / 4);
  new Uint8Array(copy.buffer).set(b);
  return { dims: t.dims, data: copy };
}

// ---- encoders: libs/model's ONNX writer (one protobuf writer in the repo) ----------------------

export type AttrValue = number | number[] | string | { float: number };

export interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attrs?: Record<string, AttrValue>;
}

export function encodeNode(n: NodeSpec): Uint8Array {
  return nodeProto(n.opType, n.inputs, n.outputs, n.name ?? '', n.attrs ?? {}, n.domain ?? '').toBytes();
}

export function encodeTensor(name: string, dataType: number, dims: number[], data: ArrayBufferView): Uint8Array {
  return tensorProto(name, dataType, dims, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).toBytes();
}

/** A graph input/output declaration; symbolic dims for sizes that vary; no shape = rank unknown. */
export function encodeValueInfo(name: string, elemType: number, shape?: (number | string)[]): Uint8Array {
  if (shape) return valueInfoProto(name, elemType, shape).toBytes();
  const type = new PbMessage().message(1, new PbMessage().int(1, elemType));
  return new PbMessage().string(1, name).message(2, type).toBytes();
}

/** Re-emits a field read by readFields into a message, unchanged. */
export function copyField(m: PbMessage, f: Field): void {
  if (f.wire === 0) m.int(f.no, f.int);
  else if (f.wire === 2) m.bytes(f.no, f.bytes);
  else if (f.wire === 5) {
    const b = new DataView(new ArrayBuffer(4));
    b.setUint32(0, Number(f.int), true);
    m.float(f.no, b.getFloat32(0, true));
  } else {
    const b = new DataView(new ArrayBuffer(8));
    b.setBigUint64(0, f.int, true);
    m.double(f.no, b.getFloat64(0, true));
  }
}

export interface GraphEdit {
  /** node index -> encoded nodes that replace it (empty array removes it). */
  replaceNodes?: Map<number, Uint8Array[]>;
  removeInitializers?: Set<string>;
  addInitializers?: Uint8Array[];
  addOutputs?: Uint8Array[];
  /** opsets to add when the model does not import the domain yet. */
  addOpsets?: { domain: string; version: number }[];
}

/** Re-serialises the model with the edits; external-data initializers that stay are inlined. */
export function rewriteOnnx(model: OnnxModel, edit: GraphEdit): Uint8Array {
  const g = new PbMessage();
  let nodeIndex = 0;
  for (const f of model.graphFields) {
    if (f.no === 1) {
      const repl = edit.replaceNodes?.get(nodeIndex++);
      if (repl) for (const n of repl) g.bytes(1, n);
      else copyField(g, f);
    } else if (f.no === 5) {
      const t = parseTensorInfo(f.bytes);
      if (edit.removeInitializers?.has(t.name)) continue;
      const external = t.fields.some((x) => x.no === 14 && x.int === 1n);
      if (external) {
        const w = new PbMessage();
        for (const x of t.fields) if (x.no !== 13 && x.no !== 14) copyField(w, x);
        w.bytes(9, tensorBytes(model, t));
        g.message(5, w);
      } else copyField(g, f);
    } else copyField(g, f);
  }
  for (const t of edit.addInitializers ?? []) g.bytes(5, t);
  for (const o of edit.addOutputs ?? []) g.bytes(12, o);

  const m = new PbMessage();
  for (const f of model.modelFields) {
    if (f.no === 7) m.message(7, g);
    else copyField(m, f);
  }
  for (const o of edit.addOpsets ?? []) {
    if (model.opsets.some((x) => x.domain === o.domain)) continue;
    m.message(8, new PbMessage().string(1, o.domain).int(2, o.version));
  }
  return m.toBytes();
}
