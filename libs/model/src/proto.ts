// A minimal protobuf writer (and a header-only reader) for the ONNX messages dllm-farm needs.
//
// Messages are built bottom-up as lists of byte chunks with a known total length, so a multi-GB
// model never has to exist as one contiguous buffer: `writeChunks` streams the chunks to a file.
// Wire format: https://protobuf.dev/programming-guides/encoding/
import * as fs from 'node:fs';

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

function varintBytes(n: number | bigint): Uint8Array {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number((v & 0x7fn) | 0x80n));
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

/** One protobuf message under construction: appended fields, kept as chunks. */
export class PbMessage {
  readonly chunks: Uint8Array[] = [];
  length = 0;

  private push(b: Uint8Array): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }
  private tag(field: number, wire: number): void {
    this.push(varintBytes((field << 3) | wire));
  }
  int(field: number, n: number | bigint): this {
    this.tag(field, WIRE_VARINT);
    this.push(varintBytes(n));
    return this;
  }
  float(field: number, f: number): this {
    this.tag(field, WIRE_I32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, f, true);
    this.push(b);
    return this;
  }
  double(field: number, f: number): this {
    this.tag(field, WIRE_I64);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, f, true);
    this.push(b);
    return this;
  }
  /** Length-delimited bytes. The array is referenced, not copied: do not mutate it afterwards. */
  bytes(field: number, b: Uint8Array): this {
    this.tag(field, WIRE_LEN);
    this.push(varintBytes(b.length));
    this.push(b);
    return this;
  }
  string(field: number, s: string): this {
    return this.bytes(field, Buffer.from(s, 'utf8'));
  }
  message(field: number, m: PbMessage): this {
    this.tag(field, WIRE_LEN);
    this.push(varintBytes(m.length));
    for (const c of m.chunks) this.push(c);
    return this;
  }
  /** The whole message as one buffer (fine below 2 GiB). */
  toBytes(): Uint8Array {
    return Buffer.concat(this.chunks, this.length);
  }
}

/** Streams a message to a file without concatenating it. */
export function writeChunks(path: string, m: PbMessage): void {
  const fd = fs.openSync(path, 'w');
  try {
    for (const c of m.chunks) {
      let off = 0;
      while (off < c.length) off += fs.writeSync(fd, c, off, c.length - off);
    }
  } finally {
    fs.closeSync(fd);
  }
}

// ---- reading -------------------------------------------------------------------------------

/** Random access to bytes: a buffer or a file opened by descriptor (so huge files are not read). */
export interface ByteSource {
  size: number;
  read(pos: number, len: number): Uint8Array;
}

export function bufferSource(buf: Uint8Array): ByteSource {
  return { size: buf.length, read: (pos, len) => buf.subarray(pos, pos + len) };
}

export function fileSource(fd: number): ByteSource {
  const size = fs.fstatSync(fd).size;
  return {
    size,
    read(pos, len) {
      const b = Buffer.alloc(Math.max(0, Math.min(len, size - pos)));
      fs.readSync(fd, b, 0, b.length, pos);
      return b;
    },
  };
}

export interface PbField {
  no: number;
  wire: number;
  /** varint / fixed value (wire 0, 1, 5). */
  value: bigint;
  /** payload start and length for wire 2. */
  start: number;
  len: number;
}

/** Walks the fields of the message at [start, end) without reading length-delimited payloads. */
export function* walkFields(src: ByteSource, start: number, end: number): Generator<PbField> {
  let pos = start;
  const varint = (): bigint => {
    const head = src.read(pos, 10);
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < head.length; i++) {
      const b = head[i];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) {
        pos += i + 1;
        return result;
      }
      shift += 7n;
    }
    throw new Error(`protobuf: bad varint at byte ${pos}`);
  };
  while (pos < end) {
    const key = Number(varint());
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === WIRE_VARINT) {
      yield { no, wire, value: varint(), start: 0, len: 0 };
    } else if (wire === WIRE_LEN) {
      const len = Number(varint());
      if (pos + len > end) throw new Error(`protobuf: field ${no} runs past the end of its message (truncated file?)`);
      yield { no, wire, value: 0n, start: pos, len };
      pos += len;
    } else if (wire === WIRE_I64 || wire === WIRE_I32) {
      const n = wire === WIRE_I64 ? 8 : 4;
      const b = src.read(pos, n);
      let v = 0n;
      for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
      yield { no, wire, value: v, start: pos, len: n };
      pos += n;
    } else {
      throw new Error(`protobuf: unsupported wire type ${wire} at byte ${pos} (not an ONNX file?)`);
    }
  }
}

export function readString(src: ByteSource, f: PbField): string {
  return Buffer.from(src.read(f.start, f.len)).toString('utf8');
}
