import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, readSafetensors, writeSafetensors, writeShardedSafetensors } from './safetensors';

function rand(n: number, seed = 1): Float32Array {
  let s = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out[i] = (s / 2147483648 - 0.5) * 8;
  }
  return out;
}

function rawFile(file: string, header: object, data: Buffer): void {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, data]));
}

describe('safetensors', () => {
  let tmp: string;
  beforeAll(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-st-'))));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('round-trips F32 exactly and F16 / BF16 within their precision', () => {
    const a = rand(6 * 7);
    const file = path.join(tmp, 'mixed.safetensors');
    writeSafetensors(file, {
      a32: { shape: [6, 7], data: a },
      a16: { shape: [6, 7], data: a, dtype: 'F16' },
      abf: { shape: [42], data: a, dtype: 'BF16' },
    });
    const st = readSafetensors(file);
    expect(st.names().sort()).toEqual(['a16', 'a32', 'abf']);
    expect(st.shape('a16')).toEqual([6, 7]);
    expect(st.info('a16').dtype).toBe('F16');
    expect(Array.from(st.get('a32'))).toEqual(Array.from(a));
    const h = st.get('a16');
    const b = st.get('abf');
    for (let i = 0; i < a.length; i++) {
      expect(Math.abs(h[i] - a[i])).toBeLessThanOrEqual(Math.abs(a[i]) * 2 ** -11 + 1e-7);
      expect(Math.abs(b[i] - a[i])).toBeLessThanOrEqual(Math.abs(a[i]) * 2 ** -8 + 1e-7);
    }
  });

  it('converts half-precision bit patterns exactly', () => {
    // f16: 1.0, -2.0, 65504 (max), 2^-24 (smallest subnormal), 0.333 ~ 0x3555, inf
    expect(Array.from(f16ToF32(Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555, 0x7c00])))).toEqual([
      1,
      -2,
      65504,
      2 ** -24,
      0.333251953125,
      Infinity,
    ]);
    expect([1, -2, 65504, 2 ** -24, 1 / 3, 1e6, 2 ** -26].map(f32ToF16)).toEqual([0x3c00, 0xc000, 0x7bff, 0x0001, 0x3555, 0x7c00, 0x0000]);
    // bf16: 1.0, -1.5, 3.140625
    expect(Array.from(bf16ToF32(Uint16Array.from([0x3f80, 0xbfc0, 0x4049])))).toEqual([1, -1.5, 3.140625]);
    expect([1, -1.5, Math.PI].map(f32ToBf16)).toEqual([0x3f80, 0xbfc0, 0x4049]);
    expect(Number.isNaN(bf16ToF32(Uint16Array.from([f32ToBf16(NaN)]))[0])).toBe(true);
  });

  it('reads sharded checkpoints through model.safetensors.index.json (and the directory)', () => {
    const dir = path.join(tmp, 'sharded');
    fs.mkdirSync(dir);
    const tensors: Record<string, { shape: number[]; data: Float32Array; dtype?: 'F16' | 'BF16' }> = {};
    for (let i = 0; i < 5; i++) tensors[`w${i}`] = { shape: [16, 8], data: rand(128, i + 3), dtype: i % 2 ? 'BF16' : 'F16' };
    const files = writeShardedSafetensors(dir, tensors, 600);
    expect(files.length).toBeGreaterThan(1);
    for (const src of [dir, path.join(dir, 'model.safetensors.index.json')]) {
      const st = readSafetensors(src);
      expect(st.names().sort()).toEqual(['w0', 'w1', 'w2', 'w3', 'w4']);
      expect(new Set(st.names().map((n) => st.info(n).file)).size).toBe(files.length);
      expect(Math.abs(st.get('w3')[5] - tensors.w3.data[5])).toBeLessThan(0.05);
    }
  });

  it('fails clearly on unknown dtypes, missing files, bad offsets and missing shards', () => {
    const i8 = path.join(tmp, 'i8.safetensors');
    rawFile(i8, { x: { dtype: 'I8', shape: [4], data_offsets: [0, 4] } }, Buffer.alloc(4));
    expect(() => readSafetensors(i8)).toThrow(/tensor x has dtype I8; supported dtypes are F32, F16, BF16/);
    const fp8 = path.join(tmp, 'fp8.safetensors');
    rawFile(fp8, { x: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, Buffer.alloc(4));
    expect(() => readSafetensors(fp8)).toThrow(/dtype F8_E4M3/);
    expect(() => readSafetensors(path.join(tmp, 'nope.safetensors'))).toThrow(/not found/);
    const short = path.join(tmp, 'short.safetensors');
    rawFile(short, { x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(8));
    expect(() => readSafetensors(short)).toThrow(/runs past the end of the file/);
    const wrong = path.join(tmp, 'wrong.safetensors');
    rawFile(wrong, { x: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, Buffer.alloc(16));
    expect(() => readSafetensors(wrong)).toThrow(/needs 12 bytes, data_offsets give 16/);
    const idxDir = path.join(tmp, 'idx');
    fs.mkdirSync(idxDir);
    fs.writeFileSync(path.join(idxDir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors' } }));
    expect(() => readSafetensors(idxDir)).toThrow(/shard model-00001-of-00002.safetensors \(for a\) is missing/);
    expect(() => readSafetensors(tmp)).toThrow(/no model.safetensors/);
  });
});
