// Field-preserving protobuf reading of ONNX models, for graph surgery (writing uses libs/model's
// PbMessage).
//
// The quantizer does not rebuild a model: it reads model.onnx as a list of protobuf fields, keeps
// every field it does not understand byte for byte (opsets, metadata, value_info, inputs,
// outputs...), and replaces only the linear layers' nodes and initializers. So any dllm-farm model
// (or any ONNX model with MatMul on constant weights) can be quantized whatever wrote it.
//
// Wire format: https://protobuf.dev/programming-guides/encoding/ ; ONNX field numbers from onnx.proto.

/** One protobuf field as found on the wire. `raw` is the whole encoded field (tag included). */
export interface Field {
  no: number;
  wire: number;
  /** varint value (wire 0), or the fixed value's bits for wire 1/5. */
  int: bigint;
  /** payload of a length-delimited field (wire 2); empty otherwise. */
  bytes: Uint8Array;
  raw: Uint8Array;
}

const EMPTY: Uint8Array = new Uint8Array(0);

function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new Error('protobuf: truncated varint');
    const b = buf[pos++];
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
    if (shift > 70n) throw new Error('protobuf: varint too long');
  }
}

/** Splits a message into its fields, in wire order. */
export function readFields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const [tag, p1] = readVarint(buf, pos);
    pos = p1;
    const no = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    let int = 0n;
    let bytes = EMPTY;
    if (wire === 0) {
      [int, pos] = readVarint(buf, pos);
    } else if (wire === 1) {
      int = new DataView(buf.buffer, buf.byteOffset + pos, 8).getBigUint64(0, true);
      pos += 8;
    } else if (wire === 5) {
      int = BigInt(new DataView(buf.buffer, buf.byteOffset + pos, 4).getUint32(0, true));
      pos += 4;
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      pos = p2 + Number(len);
      if (pos > buf.length) throw new Error('protobuf: truncated length-delimited field');
      bytes = buf.subarray(p2, pos);
    } else {
      throw new Error(`protobuf: unsupported wire type ${wire} at byte ${start}`);
    }
    if (pos > buf.length) throw new Error('protobuf: truncated field');
    out.push({ no, wire, int, bytes, raw: buf.subarray(start, pos) });
  }
  return out;
}

export const utf8 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');

/** Reads a packed (or unpacked, repeated) varint field of a message. */
export function repeatedInts(fields: Field[], no: number): bigint[] {
  const out: bigint[] = [];
  for (const f of fields) {
    if (f.no !== no) continue;
    if (f.wire === 0) out.push(f.int);
    else if (f.wire === 2) {
      let pos = 0;
      while (pos < f.bytes.length) {
        const [v, p] = readVarint(f.bytes, pos);
        out.push(BigInt.asIntN(64, v));
        pos = p;
      }
    }
  }
  return out;
}
