// Safetensors reading (F32, F16, BF16 -> Float32Array; sharded checkpoints through
// model.safetensors.index.json) and writing (for tests and tools).
//
// Format: 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {...}}, then the data block
// (offsets are relative to its start). Tensors are read lazily with positional reads, so a
// checkpoint larger than memory can be converted tensor by tensor.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** file holding it and the absolute byte range in that file. */
  file: string;
  begin: number;
  end: number;
}

/** Named float tensors, read on demand. */
export interface WeightSource {
  names(): string[];
  has(name: string): boolean;
  shape(name: string): number[];
  /** The tensor as float32 (a fresh array). Throws for unknown names. */
  get(name: string): Float32Array;
}

const f16Table = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 31) t[h] = m ? NaN : s * Infinity;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

export function f16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f16Table[src[i]];
  return out;
}

export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
  return new Float32Array(out.buffer);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> bfloat16 bits, round to nearest even. */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) return (b >>> 16) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 -> float16 bits, round to nearest even (subnormals and overflow handled). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

function parseHeader(file: string): Map<string, TensorInfo> {
  if (!fs.existsSync(file)) throw new Error(`safetensors file not found: ${file}`);
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) throw new Error(`${file}: not a safetensors file (${size} bytes)`);
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const n = Number(lenBuf.readBigUInt64LE(0));
    if (n <= 0 || 8 + n > size || n > 100 * 1024 * 1024) throw new Error(`${file}: bad safetensors header length ${n}`);
    const hb = Buffer.alloc(n);
    fs.readSync(fd, hb, 0, n, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(hb.toString('utf8'));
    } catch (e) {
      throw new Error(`${file}: safetensors header is not JSON (${(e as Error).message})`);
    }
    const base = 8 + n;
    const out = new Map<string, TensorInfo>();
    for (const [name, v] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const t = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof t.dtype !== 'string' || !(t.dtype in BYTES)) {
        throw new Error(`${file}: tensor ${name} has dtype ${String(t.dtype)}; supported dtypes are F32, F16, BF16`);
      }
      const dtype = t.dtype as SafetensorsDtype;
      if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`${file}: tensor ${name} has a bad shape`);
      const offs = t.data_offsets;
      if (!Array.isArray(offs) || offs.length !== 2) throw new Error(`${file}: tensor ${name} has no data_offsets`);
      const [b, e] = offs as number[];
      const count = (t.shape as number[]).reduce((a, d) => a * d, 1);
      if (e - b !== count * BYTES[dtype])
        throw new Error(
          `${file}: tensor ${name} [${(t.shape as number[]).join(',')}] ${dtype} needs ${count * BYTES[dtype]} bytes, data_offsets give ${e - b}`,
        );
      if (base + e > size) throw new Error(`${file}: tensor ${name} runs past the end of the file (truncated?)`);
      out.set(name, { dtype, shape: t.shape as number[], file, begin: base + b, end: base + e });
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

class SafetensorsSource implements WeightSource {
  constructor(private readonly infos: Map<string, TensorInfo>) {}
  names(): string[] {
    return [...this.infos.keys()];
  }
  has(name: string): boolean {
    return this.infos.has(name);
  }
  info(name: string): TensorInfo {
    const i = this.infos.get(name);
    if (!i) throw new Error(`tensor ${name} not found in the checkpoint`);
    return i;
  }
  shape(name: string): number[] {
    return [...this.info(name).shape];
  }
  get(name: string): Float32Array {
    const i = this.info(name);
    const len = i.end - i.begin;
    const buf = Buffer.alloc(len);
    const fd = fs.openSync(i.file, 'r');
    try {
      let off = 0;
      while (off < len) {
        const n = fs.readSync(fd, buf, off, len - off, i.begin + off);
        if (n === 0) throw new Error(`${i.file}: unexpected end of file reading ${name}`);
        off += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    // Buffer.alloc of small sizes may be pooled/unaligned: copy into aligned typed arrays.
    if (i.dtype === 'F32') {
      const out = new Float32Array(len / 4);
      new Uint8Array(out.buffer).set(buf);
      return out;
    }
    const u16 = new Uint16Array(len / 2);
    new Uint8Array(u16.buffer).set(buf);
    return i.dtype === 'F16' ? f16ToF32(u16) : bf16ToF32(u16);
  }
}

/**
 * Opens a checkpoint: a `.safetensors` file, an index JSON (`model.safetensors.index.json`), or a
 * directory holding either `model.safetensors` or `model.safetensors.index.json`.
 */
export function readSafetensors(pathOrDir: string): WeightSource & { info(name: string): TensorInfo } {
  if (!fs.existsSync(pathOrDir)) throw new Error(`checkpoint not found: ${pathOrDir}`);
  let target = pathOrDir;
  if (fs.statSync(pathOrDir).isDirectory()) {
    const single = path.join(pathOrDir, 'model.safetensors');
    const index = path.join(pathOrDir, 'model.safetensors.index.json');
    if (fs.existsSync(index)) target = index;
    else if (fs.existsSync(single)) target = single;
    else throw new Error(`${pathOrDir}: no model.safetensors or model.safetensors.index.json`);
  }
  if (target.endsWith('.json')) {
    let idx: { weight_map?: Record<string, string> };
    try {
      idx = JSON.parse(fs.readFileSync(target, 'utf8'));
    } catch (e) {
      throw new Error(`${target}: not valid JSON (${(e as Error).message})`);
    }
    if (!idx.weight_map || typeof idx.weight_map !== 'object') throw new Error(`${target}: no weight_map`);
    const dir = path.dirname(target);
    const shards = new Map<string, Map<string, TensorInfo>>();
    const all = new Map<string, TensorInfo>();
    for (const [name, shard] of Object.entries(idx.weight_map)) {
      const file = path.join(dir, shard);
      if (!shards.has(file)) {
        if (!fs.existsSync(file)) throw new Error(`${target}: shard ${shard} (for ${name}) is missing`);
        shards.set(file, parseHeader(file));
      }
      const info = shards.get(file)!.get(name);
      if (!info) throw new Error(`${target}: index says ${name} is in ${shard}, but that shard has no such tensor`);
      all.set(name, info);
    }
    return new SafetensorsSource(all);
  }
  return new SafetensorsSource(parseHeader(target));
}

export interface TensorToWrite {
  shape: number[];
  data: Float32Array;
  /** stored dtype (default F32). */
  dtype?: SafetensorsDtype;
}

function encodeTensor(t: TensorToWrite, name: string): Buffer {
  const count = t.shape.reduce((a, d) => a * d, 1);
  if (count !== t.data.length) throw new Error(`writeSafetensors: ${name} has ${t.data.length} values for shape [${t.shape.join(',')}]`);
  const dtype = t.dtype ?? 'F32';
  if (dtype === 'F32') return Buffer.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  const u16 = new Uint16Array(count);
  const conv = dtype === 'F16' ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < count; i++) u16[i] = conv(t.data[i]);
  return Buffer.from(u16.buffer);
}

/** Writes one safetensors file. */
export function writeSafetensors(file: string, tensors: Record<string, TensorToWrite>, metadata: Record<string, string> = { format: 'pt' }): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const datas: Buffer[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const b = encodeTensor(t, name);
    header[name] = { dtype: t.dtype ?? 'F32', shape: t.shape, data_offsets: [off, off + b.length] };
    datas.push(b);
    off += b.length;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const fd = fs.openSync(file, 'w');
  try {
    for (const b of [len, json, ...datas]) fs.writeSync(fd, b);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Writes a sharded checkpoint: `model-0000k-of-0000n.safetensors` files of at most
 * `maxShardBytes` each (a tensor is never split) plus `model.safetensors.index.json`.
 */
export function writeShardedSafetensors(dir: string, tensors: Record<string, TensorToWrite>, maxShardBytes: number): string[] {
  const groups: Record<string, TensorToWrite>[] = [];
  let cur: Record<string, TensorToWrite> = {};
  let bytes = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const size = t.data.length * BYTES[t.dtype ?? 'F32'];
    if (bytes > 0 && bytes + size > maxShardBytes) {
      groups.push(cur);
      cur = {};
      bytes = 0;
    }
    cur[name] = t;
    bytes += size;
  }
  if (Object.keys(cur).length) groups.push(cur);
  const n = groups.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  const files: string[] = [];
  let total = 0;
  groups.forEach((g, i) => {
    const fname = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    writeSafetensors(path.join(dir, fname), g);
    files.push(fname);
    for (const [name, t] of Object.entries(g)) {
      weightMap[name] = fname;
      total += t.data.length * BYTES[t.dtype ?? 'F32'];
    }
  });
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  return files;
}
