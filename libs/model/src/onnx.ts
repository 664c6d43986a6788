// ONNX messages on top of the protobuf writer: tensors (inline or external data), nodes,
// attributes, value infos, graphs and models, plus a small graph-building helper.
// Field numbers follow onnx/onnx.proto (IR version 8).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PbMessage, type ByteSource, walkFields, readString, fileSource } from './proto';

export const TensorType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10 } as const;
export type TensorTypeId = (typeof TensorType)[keyof typeof TensorType];

const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

export type AttrValue = number | bigint | string | number[] | { floats: number[] } | { float: number } | PbMessage;

/** A dimension: a number for fixed sizes, a string for a symbolic one. */
export type Dim = number | string;

export interface ExternalRef {
  location: string;
  offset: number;
  length: number;
}

/** TensorProto. `data` is little-endian raw bytes; pass `external` instead to point at a data file. */
export function tensorProto(name: string, dataType: number, dims: readonly number[], data: Uint8Array | null, external?: ExternalRef): PbMessage {
  const t = new PbMessage();
  for (const d of dims) t.int(1, d);
  t.int(2, dataType);
  t.string(8, name);
  if (external) {
    const kv = (k: string, v: string) => new PbMessage().string(1, k).string(2, v);
    t.message(13, kv('location', external.location));
    t.message(13, kv('offset', String(external.offset)));
    t.message(13, kv('length', String(external.length)));
    t.int(14, 1);
  } else if (data) {
    t.bytes(9, data);
  }
  return t;
}

export function attributeProto(name: string, v: AttrValue): PbMessage {
  const a = new PbMessage().string(1, name);
  if (v instanceof PbMessage) a.message(5, v).int(20, AttrType.TENSOR);
  else if (typeof v === 'string') a.bytes(4, Buffer.from(v, 'utf8')).int(20, AttrType.STRING);
  else if (typeof v === 'bigint') a.int(3, v).int(20, AttrType.INT);
  else if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use {float: x} for non-integer values`);
    a.int(3, v).int(20, AttrType.INT);
  } else if (Array.isArray(v)) {
    for (const x of v) a.int(8, x);
    a.int(20, AttrType.INTS);
  } else if ('float' in v) a.float(2, v.float).int(20, AttrType.FLOAT);
  else {
    for (const x of v.floats) a.float(7, x);
    a.int(20, AttrType.FLOATS);
  }
  return a;
}

export function nodeProto(opType: string, inputs: readonly string[], outputs: readonly string[], name: string, attrs: Record<string, AttrValue> = {}, domain = ''): PbMessage {
  const n = new PbMessage();
  for (const i of inputs) n.string(1, i);
  for (const o of outputs) n.string(2, o);
  n.string(3, name);
  n.string(4, opType);
  for (const [k, v] of Object.entries(attrs)) n.message(5, attributeProto(k, v));
  if (domain) n.string(7, domain);
  return n;
}

export function valueInfoProto(name: string, elemType: number, shape: readonly Dim[]): PbMessage {
  const shp = new PbMessage();
  for (const d of shape) {
    const dim = new PbMessage();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shp.message(1, dim);
  }
  const tensorType = new PbMessage().int(1, elemType).message(2, shp);
  const type = new PbMessage().message(1, tensorType);
  return new PbMessage().string(1, name).message(2, type);
}

export interface IoSpec {
  name: string;
  type: number;
  shape: Dim[];
}

/**
 * Accumulates nodes and initializers. Initializer data is either kept inline or appended to an
 * external data file as it arrives (so a large model's weights are written once and not held).
 */
export class OnnxGraph {
  private readonly nodes: PbMessage[] = [];
  private readonly inits: PbMessage[] = [];
  private readonly names = new Set<string>();
  private counter = 0;
  private dataFd: number | null = null;
  private dataOffset = 0;
  private readonly dataLocation: string | null;
  readonly opsetDomains = new Map<string, number>([['', 17]]);
  /** Bytes of initializer data written so far (inline or external). */
  weightBytes = 0;

  /** externalDataPath: absolute path of the data file to stream weights into, or null for inline. */
  constructor(readonly name: string, externalDataPath: string | null = null) {
    if (externalDataPath) {
      this.dataFd = fs.openSync(externalDataPath, 'w');
      this.dataLocation = path.basename(externalDataPath);
    } else this.dataLocation = null;
  }

  /** A fresh value name with a readable prefix. */
  fresh(prefix: string): string {
    let n: string;
    do n = `${prefix}_${this.counter++}`;
    while (this.names.has(n));
    return n;
  }

  node(opType: string, inputs: readonly string[], outputs: number | readonly string[], attrs: Record<string, AttrValue> = {}, domain = '', prefix?: string): string[] {
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
    if (this.dataFd !== null && data.length >= externalMin) {
      // 64-byte alignment lets ORT memory-map each tensor.
      const pad = (64 - (this.dataOffset % 64)) % 64;
      if (pad) fs.writeSync(this.dataFd, Buffer.alloc(pad));
      this.dataOffset += pad;
      let off = 0;
      while (off < data.length) off += fs.writeSync(this.dataFd, data, off, data.length - off);
      this.inits.push(tensorProto(name, dataType, dims, null, { location: this.dataLocation!, offset: this.dataOffset, length: data.length }));
      this.dataOffset += data.length;
    } else {
      this.inits.push(tensorProto(name, dataType, dims, data));
    }
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
  toModel(inputs: IoSpec[], outputs: IoSpec[], meta: Record<string, string> = {}, producer = 'dllm-farm'): PbMessage {
    if (this.dataFd !== null) {
      fs.closeSync(this.dataFd);
      this.dataFd = null;
    }
    const g = new PbMessage();
    for (const n of this.nodes) g.message(1, n);
    g.string(2, this.name);
    for (const t of this.inits) g.message(5, t);
    for (const i of inputs) g.message(11, valueInfoProto(i.name, i.type, i.shape));
    for (const o of outputs) g.message(12, valueInfoProto(o.name, o.type, o.shape));
    const m = new PbMessage().int(1, 8).string(2, producer).string(3, '0.1.0');
    for (const [domain, version] of this.opsetDomains) m.message(8, new PbMessage().string(1, domain).int(2, version));
    m.message(7, g);
    for (const [k, v] of Object.entries(meta)) m.message(14, new PbMessage().string(1, k).string(2, v));
    return m;
  }
}

// ---- inspection -----------------------------------------------------------------------------

export interface OnnxIo {
  name: string;
  elemType: number;
  shape: (number | string | null)[];
}

export interface OnnxSummary {
  irVersion: number;
  opsets: Record<string, number>;
  inputs: OnnxIo[];
  outputs: OnnxIo[];
  /** external data files named by initializers. */
  externalFiles: string[];
  metadata: Record<string, string>;
}

function readValueInfo(src: ByteSource, start: number, len: number): OnnxIo {
  const io: OnnxIo = { name: '', elemType: 0, shape: [] };
  for (const f of walkFields(src, start, start + len)) {
    if (f.no === 1) io.name = readString(src, f);
    else if (f.no === 2) {
      for (const t of walkFields(src, f.start, f.start + f.len)) {
        if (t.no !== 1) continue;
        for (const tt of walkFields(src, t.start, t.start + t.len)) {
          if (tt.no === 1) io.elemType = Number(tt.value);
          else if (tt.no === 2) {
            for (const d of walkFields(src, tt.start, tt.start + tt.len)) {
              if (d.no !== 1) continue;
              let dim: number | string | null = null;
              for (const x of walkFields(src, d.start, d.start + d.len)) {
                if (x.no === 1) dim = Number(x.value);
                else if (x.no === 2) dim = readString(src, x);
              }
              io.shape.push(dim);
            }
          }
        }
      }
    }
  }
  return io;
}

/**
 * Reads the graph's inputs, outputs, opsets and external data file names without reading the
 * weights (initializer payloads are skipped by length), so it is cheap even for inline models.
 */
export function inspectOnnx(file: string): OnnxSummary {
  const fd = fs.openSync(file, 'r');
  try {
    const src = fileSource(fd);
    const s: OnnxSummary = { irVersion: 0, opsets: {}, inputs: [], outputs: [], externalFiles: [], metadata: {} };
    let sawGraph = false;
    const ext = new Set<string>();
    for (const f of walkFields(src, 0, src.size)) {
      if (f.no === 1 && f.wire === 0) s.irVersion = Number(f.value);
      else if (f.no === 8 && f.wire === 2) {
        let domain = '';
        let version = 0;
        for (const o of walkFields(src, f.start, f.start + f.len)) {
          if (o.no === 1) domain = readString(src, o);
          else if (o.no === 2) version = Number(o.value);
        }
        s.opsets[domain] = version;
      } else if (f.no === 14 && f.wire === 2) {
        let k = '';
        let v = '';
        for (const o of walkFields(src, f.start, f.start + f.len)) {
          if (o.no === 1) k = readString(src, o);
          else if (o.no === 2) v = readString(src, o);
        }
        s.metadata[k] = v;
      } else if (f.no === 7 && f.wire === 2) {
        sawGraph = true;
        for (const g of walkFields(src, f.start, f.start + f.len)) {
          if (g.wire !== 2) continue;
          if (g.no === 11) s.inputs.push(readValueInfo(src, g.start, g.len));
          else if (g.no === 12) s.outputs.push(readValueInfo(src, g.start, g.len));
          else if (g.no === 5) {
            for (const t of walkFields(src, g.start, g.start + g.len)) {
              if (t.no !== 13 || t.wire !== 2) continue;
              let k = '';
              let v = '';
              for (const o of walkFields(src, t.start, t.start + t.len)) {
                if (o.no === 1) k = readString(src, o);
                else if (o.no === 2) v = readString(src, o);
              }
              if (k === 'location') ext.add(v);
            }
          }
        }
      }
    }
    if (!sawGraph) throw new Error('no graph in ONNX model');
    s.externalFiles = [...ext];
    return s;
  } finally {
    fs.closeSync(fd);
  }
}
