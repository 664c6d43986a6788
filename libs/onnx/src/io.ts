// Reading and writing ONNX model files, and their external data by byte ranges.
//
// The protobuf part of an ONNX file is limited to 2 GiB by protobuf itself, so a large model keeps
// its weights in an external data file (TensorProto.external_data: location, offset, length). That
// file can be far larger than one Node buffer: it is only ever read and written by ranges here
// (positioned fs reads/writes), never loaded whole.
// Spec: https://github.com/onnx/onnx/blob/main/docs/ExternalData.md
import * as fs from 'node:fs';
import * as path from 'node:path';
import { create, fromBinary, isFieldSet, toBinary } from '@bufbuild/protobuf';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
  TensorProtoSchema,
  type ModelProto,
  type TensorProto,
  type ValueInfoProto,
} from './gen/onnx_pb';
import type { ExternalRef } from './build';

/** Parses an ONNX model (protobuf bytes). Fields this schema does not know are kept (`$unknown`) and written back. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  return fromBinary(ModelProtoSchema, bytes);
}

/**
 * Serialises a model. Fields are written in the order dllm-farm has always written them
 * (ir_version, producer, opset_import, graph, metadata_props, then the rest), which keeps
 * `convert`'s output byte-identical: protobuf readers accept fields in any order, and a message
 * made of concatenated parts is their merge (protobuf encoding spec, "Last One Wins").
 */
export function encodeModel(m: ModelProto): Uint8Array {
  const { graph, metadataProps, $unknown } = m;
  let head: Uint8Array;
  try {
    m.graph = undefined;
    m.metadataProps = [];
    m.$unknown = undefined;
    head = toBinary(ModelProtoSchema, m);
  } finally {
    m.graph = graph;
    m.metadataProps = metadataProps;
    m.$unknown = $unknown;
  }
  const rest = [graph ? toBinary(ModelProtoSchema, create(ModelProtoSchema, { graph })) : new Uint8Array(0)];
  const tail = create(ModelProtoSchema, { metadataProps });
  tail.$unknown = $unknown;
  rest.push(toBinary(ModelProtoSchema, tail));
  return Buffer.concat([head, ...rest]);
}

/** Reads and parses a model file. Throws with the file name when it is not a readable ONNX model. */
export function readModel(file: string): ModelProto {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ONNX model ${file}: ${(e as Error).message}`);
  }
  try {
    return decodeModel(bytes);
  } catch (e) {
    throw new Error(`${file} is not a valid ONNX model (${(e as Error).message})`);
  }
}

/** Writes a model file (the protobuf part; external data files are written by ExternalDataWriter). */
export function writeModel(file: string, m: ModelProto): void {
  fs.writeFileSync(file, encodeModel(m));
}

// ---- external data --------------------------------------------------------------------------

/** Largest single positioned read/write: fs calls take at most 2 GiB - 1 bytes each. */
const IO_CHUNK = 1 << 30;

/** Reads exactly `length` bytes at `position` (a safe integer, may exceed 2^31) into `out` at `outOffset`. */
function readFully(fd: number, out: Uint8Array, outOffset: number, length: number, position: number, what: string): void {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, out, outOffset + done, Math.min(IO_CHUNK, length - done), position + done);
    if (n === 0)
      throw new Error(`${what}: file ends at byte ${position + done}, ${length - done} bytes short of the range [${position}, ${position + length})`);
    done += n;
  }
}

function writeFully(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, Math.min(IO_CHUNK, data.length - done), position + done);
}

/**
 * Reads byte ranges of files (external data) through positioned reads, keeping one descriptor per
 * file open until close(). Never reads a whole file, so files above 2 GiB work.
 */
export class RangeReader {
  private readonly fds = new Map<string, { fd: number; size: number }>();

  private open(file: string): { fd: number; size: number } {
    let f = this.fds.get(file);
    if (!f) {
      if (!fs.existsSync(file)) throw new Error(`external data file not found: ${file}`);
      const fd = fs.openSync(file, 'r');
      f = { fd, size: fs.fstatSync(fd).size };
      this.fds.set(file, f);
    }
    return f;
  }

  /** Size of a file in bytes. */
  size(file: string): number {
    return this.open(file).size;
  }

  /** `length` bytes at `offset` of `file`, as a new buffer. Throws when the range runs past the end. */
  read(file: string, offset: number, length: number): Buffer {
    const f = this.open(file);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0)
      throw new Error(`${file}: bad range offset ${offset} length ${length}`);
    if (offset + length > f.size) throw new Error(`${file}: range [${offset}, ${offset + length}) runs past the end of the file (${f.size} bytes)`);
    const out = Buffer.allocUnsafe(length);
    readFully(f.fd, out, 0, length, offset, file);
    return out;
  }

  /** Copies a range of `file` to `dst` (a descriptor) at `dstOffset` in bounded chunks (16 MiB). */
  copyTo(file: string, offset: number, length: number, dst: number, dstOffset: number): void {
    const f = this.open(file);
    if (offset + length > f.size) throw new Error(`${file}: range [${offset}, ${offset + length}) runs past the end of the file (${f.size} bytes)`);
    const buf = Buffer.allocUnsafe(Math.min(length, 16 << 20));
    for (let done = 0; done < length;) {
      const n = Math.min(buf.length, length - done);
      readFully(f.fd, buf, 0, n, offset + done, file);
      writeFully(dst, buf.subarray(0, n), dstOffset + done);
      done += n;
    }
  }

  close(): void {
    for (const f of this.fds.values()) fs.closeSync(f.fd);
    this.fds.clear();
  }
}

/**
 * Appends tensors to an external data file, each at a 64-byte aligned offset (so onnxruntime can
 * memory-map it), and returns where each one went. `location` is the file name as recorded in the
 * model (relative to the model file's directory).
 */
export class ExternalDataWriter {
  private fd: number | null;
  private offset = 0;
  readonly location: string;

  constructor(readonly file: string) {
    this.fd = fs.openSync(file, 'w');
    this.location = path.basename(file);
  }

  private align(): number {
    if (this.fd === null) throw new Error(`external data file ${this.file} is already closed`);
    const pad = (64 - (this.offset % 64)) % 64;
    if (pad) writeFully(this.fd, Buffer.alloc(pad), this.offset);
    this.offset += pad;
    return this.fd;
  }

  /** Appends bytes; returns their reference. */
  append(data: Uint8Array): ExternalRef {
    const fd = this.align();
    writeFully(fd, data, this.offset);
    const ref = { location: this.location, offset: this.offset, length: data.length };
    this.offset += data.length;
    return ref;
  }

  /** Appends a range of another file, copied in bounded chunks. */
  appendRange(reader: RangeReader, file: string, offset: number, length: number): ExternalRef {
    const fd = this.align();
    reader.copyTo(file, offset, length, fd, this.offset);
    const ref = { location: this.location, offset: this.offset, length };
    this.offset += length;
    return ref;
  }

  /** Bytes written so far (the file's size once closed). */
  get size(): number {
    return this.offset;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** The external data reference of a tensor stored outside the model, or null for inline data. */
export function externalRef(t: TensorProto): (Omit<ExternalRef, 'length'> & { length: number | null }) | null {
  if (t.dataLocation !== TensorProto_DataLocation.EXTERNAL) return null;
  const kv = new Map(t.externalData.map((e) => [e.key, e.value]));
  const location = kv.get('location');
  if (!location) throw new Error(`initializer ${t.name}: external data without a location`);
  const num = (k: string): number | null => {
    const v = kv.get(k);
    if (v === undefined) return null;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`initializer ${t.name}: external data ${k} is not a byte count: ${JSON.stringify(v)}`);
    return n;
  };
  return { location, offset: num('offset') ?? 0, length: num('length') };
}

/**
 * A tensor's bytes, little-endian: raw_data, the typed repeated fields, or its external data range
 * (read through `reader`, relative to `baseDir`). Throws for types this project does not read
 * without raw_data.
 */
export function tensorBytes(t: TensorProto, baseDir: string, reader: RangeReader): Uint8Array {
  const ext = externalRef(t);
  if (ext) {
    const file = path.resolve(baseDir, ext.location);
    const length = ext.length ?? reader.size(file) - ext.offset;
    return reader.read(file, ext.offset, length);
  }
  if (isFieldSet(t, TensorProtoSchema.field.rawData)) return t.rawData;
  const T = TensorProto_DataType;
  switch (t.dataType) {
    case T.FLOAT:
      return new Uint8Array(Float32Array.from(t.floatData).buffer);
    case T.DOUBLE:
      return new Uint8Array(Float64Array.from(t.doubleData).buffer);
    case T.INT64:
      return new Uint8Array(BigInt64Array.from(t.int64Data).buffer);
    case T.INT32:
      return new Uint8Array(Int32Array.from(t.int32Data).buffer);
    case T.INT8:
      return new Uint8Array(Int8Array.from(t.int32Data).buffer);
    case T.UINT8:
    case T.BOOL:
      return Uint8Array.from(t.int32Data);
    default:
      throw new Error(`initializer ${t.name}: unsupported data type ${t.dataType} without raw_data`);
  }
}

// ---- inspection -----------------------------------------------------------------------------

/** A graph input/output as read back: dims are numbers, symbolic names, or null when unknown. */
export interface OnnxIo {
  name: string;
  elemType: number;
  /** null when the rank is unknown. */
  shape: (number | string | null)[] | null;
}

/** Element type and shape of a tensor-typed value info (elemType 0 and shape null otherwise). */
export function readValueInfo(v: ValueInfoProto): OnnxIo {
  const io: OnnxIo = { name: v.name, elemType: 0, shape: null };
  const tt = v.type?.value.case === 'tensorType' ? v.type.value.value : null;
  if (!tt) return io;
  io.elemType = tt.elemType;
  if (tt.shape) io.shape = tt.shape.dim.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : null));
  return io;
}

/** What a reader of a model needs without its weights: IR version, opsets, I/O, external files, metadata. */
export interface OnnxSummary {
  irVersion: number;
  opsets: Record<string, number>;
  inputs: OnnxIo[];
  outputs: OnnxIo[];
  /** external data files named by initializers. */
  externalFiles: string[];
  metadata: Record<string, string>;
}

/** Summarises a parsed model. Throws when it has no graph. */
export function summarizeModel(m: ModelProto): OnnxSummary {
  if (!m.graph) throw new Error('no graph in ONNX model');
  const ext = new Set<string>();
  for (const t of m.graph.initializer) {
    const r = externalRef(t);
    if (r) ext.add(r.location);
  }
  return {
    irVersion: Number(m.irVersion),
    opsets: Object.fromEntries(m.opsetImport.map((o) => [o.domain, Number(o.version)])),
    inputs: m.graph.input.map(readValueInfo),
    outputs: m.graph.output.map(readValueInfo),
    externalFiles: [...ext],
    metadata: Object.fromEntries(m.metadataProps.map((p) => [p.key, p.value])),
  };
}

/** One field of a message as found in a file: its number, wire type, and byte ranges. */
interface FileField {
  no: number;
  wire: WireType;
  /** [start, end) of the whole field (tag included). */
  start: number;
  end: number;
  /** where a length-delimited payload starts (end for other wire types). */
  payload: number;
}

/** The fields of the message at [start, end) of a file, read by small positioned reads (payloads are not read). */
function fileFields(fd: number, start: number, end: number, file: string): FileField[] {
  const out: FileField[] = [];
  const head = Buffer.alloc(24);
  for (let pos = start; pos < end;) {
    const n = fs.readSync(fd, head, 0, Math.min(head.length, end - pos), pos);
    const r = new BinaryReader(head.subarray(0, n));
    const [no, wire] = r.tag();
    let payload: number;
    let fieldEnd: number;
    if (wire === WireType.LengthDelimited) {
      const len = r.uint32();
      payload = pos + r.pos;
      fieldEnd = payload + len;
    } else if (wire === WireType.Varint) {
      r.uint64();
      fieldEnd = payload = pos + r.pos;
    } else if (wire === WireType.Bit64 || wire === WireType.Bit32) {
      fieldEnd = payload = pos + r.pos + (wire === WireType.Bit64 ? 8 : 4);
    } else throw new Error(`${file}: unsupported protobuf wire type ${wire} at byte ${pos}`);
    if (fieldEnd > end) throw new Error(`${file}: field ${no} at byte ${pos} runs past the end of its message (truncated file?)`);
    out.push({ no, wire, start: pos, end: fieldEnd, payload });
    pos = fieldEnd;
  }
  return out;
}

/** The tensor data fields a summary never needs (raw_data and the typed repeated values). */
const TENSOR_DATA_FIELDS = new Set(
  (['rawData', 'floatData', 'int32Data', 'stringData', 'int64Data', 'doubleData', 'uint64Data'] as const).map((k) => TensorProtoSchema.field[k].number),
);

/**
 * Reads a model file without its weights: every field is read except the tensor data of the
 * graph's initializers (raw_data and typed values), which is skipped by length. So a summary of a
 * model with 1.9 GiB of inline weights reads kilobytes. Field numbers come from the generated schema.
 */
export function readModelSkeleton(file: string): ModelProto {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const bytes = (f: { start: number; end: number }): Buffer => {
      const b = Buffer.allocUnsafe(f.end - f.start);
      readFully(fd, b, 0, b.length, f.start, file);
      return b;
    };
    const wrap = (no: number, payload: Uint8Array): Uint8Array => new BinaryWriter().tag(no, WireType.LengthDelimited).bytes(payload).finish();
    const graphNo = ModelProtoSchema.field.graph.number;
    const initNo = GraphProtoSchema.field.initializer.number;
    const parts: Uint8Array[] = [];
    for (const f of fileFields(fd, 0, size, file)) {
      if (f.no !== graphNo || f.wire !== WireType.LengthDelimited) {
        parts.push(bytes(f));
        continue;
      }
      const graph: Uint8Array[] = [];
      for (const g of fileFields(fd, f.payload, f.end, file)) {
        if (g.no !== initNo || g.wire !== WireType.LengthDelimited) {
          graph.push(bytes(g));
          continue;
        }
        const kept = fileFields(fd, g.payload, g.end, file).filter((t) => !TENSOR_DATA_FIELDS.has(t.no));
        graph.push(wrap(initNo, Buffer.concat(kept.map(bytes))));
      }
      parts.push(wrap(graphNo, Buffer.concat(graph)));
    }
    return decodeModel(Buffer.concat(parts));
  } catch (e) {
    throw new Error(`${file} is not a valid ONNX model (${(e as Error).message})`);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads a model file's summary without reading its weights (see readModelSkeleton). */
export function inspectOnnx(file: string): OnnxSummary {
  return summarizeModel(readModelSkeleton(file));
}
