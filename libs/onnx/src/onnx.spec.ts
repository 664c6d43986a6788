import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import {
  ExternalDataWriter,
  GraphProtoSchema,
  NodeProtoSchema,
  RangeReader,
  TensorProtoSchema,
  TensorType,
  decodeModel,
  encodeModel,
  externalRef,
  inspectOnnx,
  modelProto,
  nodeProto,
  readModel,
  readModelSkeleton,
  summarizeModel,
  tensorBytes,
  tensorProto,
  valueInfoProto,
} from './index';

let tmp: string;
beforeAll(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-onnx-'))));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** protobuf key + payload for a length-delimited field. */
function lenField(no: number, payload: Uint8Array): Buffer {
  const varint = (n: number) => {
    const out: number[] = [];
    for (; n >= 0x80; n >>>= 7) out.push((n & 0x7f) | 0x80);
    return [...out, n];
  };
  return Buffer.concat([Buffer.from([...varint((no << 3) | 2), ...varint(payload.length)]), payload]);
}

function smallModel() {
  const g = create(GraphProtoSchema, {
    node: [nodeProto('Relu', ['x'], ['y'], 'relu', { alpha: { float: 0.5 }, axes: [0, -1], mode: 'fast' })],
    name: 'g',
    initializer: [tensorProto('w', TensorType.FLOAT, [2], new Uint8Array(new Float32Array([1, 2]).buffer))],
    input: [valueInfoProto('x', TensorType.FLOAT, ['N', 2])],
    output: [valueInfoProto('y', TensorType.FLOAT)],
  });
  return modelProto(g, [['', 17]], { note: 'hi' });
}

describe('ModelProto read/write', () => {
  it.each(['tiny-ar', 'tiny-dllm'])('re-encodes the bundled models/%s/model.onnx byte for byte (the writer is unchanged)', (name) => {
    const bytes = fs.readFileSync(path.join(__dirname, '../../../models', name, 'model.onnx'));
    expect(Buffer.from(encodeModel(decodeModel(bytes))).equals(bytes)).toBe(true);
  });

  it('keeps unknown fields (a newer onnx.proto) through a read/write round trip, at every level', () => {
    const base = Buffer.from(encodeModel(smallModel()));
    const future = lenField(1000, Buffer.from('model-level')); // ModelProto field 1000: unknown
    // a second `graph` field merges into the first (protobuf merge): it carries an unknown GraphProto field
    const graphExtra = lenField(7, lenField(1001, Buffer.from('graph-level')));
    const nodeExtra = lenField(7, lenField(1, lenField(1002, Buffer.from('node-level')))); // graph.node[+1] with an unknown field
    const m = decodeModel(Buffer.concat([base, future, graphExtra, nodeExtra]));
    expect(m.$unknown?.map((u) => u.no)).toEqual([1000]);
    expect(m.graph!.$unknown?.map((u) => u.no)).toEqual([1001]);
    expect(m.graph!.node[1].$unknown?.map((u) => u.no)).toEqual([1002]);
    const again = decodeModel(encodeModel(m));
    expect(Buffer.from(again.$unknown![0].data).toString()).toContain('model-level');
    expect(Buffer.from(again.graph!.$unknown![0].data).toString()).toContain('graph-level');
    expect(Buffer.from(again.graph!.node[1].$unknown![0].data).toString()).toContain('node-level');
  });

  it('summarizes I/O, opsets, metadata and external files', () => {
    const m = smallModel();
    m.graph!.initializer.push(tensorProto('big', TensorType.FLOAT, [4], null, { location: 'w.data', offset: 64, length: 16 }));
    const s = summarizeModel(decodeModel(encodeModel(m)));
    expect(s).toEqual({
      irVersion: 8,
      opsets: { '': 17 },
      inputs: [{ name: 'x', elemType: TensorType.FLOAT, shape: ['N', 2] }],
      outputs: [{ name: 'y', elemType: TensorType.FLOAT, shape: null }],
      externalFiles: ['w.data'],
      metadata: { note: 'hi' },
    });
    expect(() => summarizeModel(decodeModel(new Uint8Array(0)))).toThrow(/no graph/);
  });

  it('inspects a model file without reading its tensor data (summary equal to a full parse)', () => {
    const file = path.join(__dirname, '../../../models/tiny-dllm/model.onnx');
    const skel = readModelSkeleton(file);
    expect(skel.graph!.initializer.length).toBeGreaterThan(10);
    expect(skel.graph!.initializer.every((t) => t.rawData.length === 0 && t.floatData.length === 0)).toBe(true);
    expect(skel.graph!.initializer.map((t) => [t.name, t.dims])).toEqual(readModel(file).graph!.initializer.map((t) => [t.name, t.dims]));
    expect(inspectOnnx(file)).toEqual(summarizeModel(readModel(file)));
    const m = smallModel();
    m.graph!.initializer.push(tensorProto('big', TensorType.FLOAT, [4], null, { location: 'w.data', offset: 64, length: 16 }));
    const f2 = path.join(tmp, 'ext.onnx');
    fs.writeFileSync(f2, encodeModel(m));
    expect(inspectOnnx(f2).externalFiles).toEqual(['w.data']);
    const junk = path.join(tmp, 'junk.onnx');
    fs.writeFileSync(junk, 'this is not protobuf');
    expect(() => inspectOnnx(junk)).toThrow(/not a valid ONNX model|no graph/);
    fs.writeFileSync(junk, Buffer.from(encodeModel(m)).subarray(0, 40));
    expect(() => inspectOnnx(junk)).toThrow(/truncated|not a valid ONNX model/);
  });

  it('writes attributes with their type discriminators', () => {
    const n = decodeModel(encodeModel(smallModel())).graph!.node[0];
    expect(n.attribute.map((a) => [a.name, a.type])).toEqual([
      ['alpha', 1],
      ['axes', 7],
      ['mode', 3],
    ]);
    expect(n.attribute[1].ints).toEqual([0n, -1n]);
    expect(() => nodeProto('X', [], [], 'x', { bad: 0.5 })).toThrow(/use \{float: x\}/);
    expect(toBinary(NodeProtoSchema, nodeProto('X', [], [], ''))).toEqual(Uint8Array.from([0x1a, 0, 0x22, 1, 0x58])); // name '' is written, domain '' is not
  });
});

describe('tensor data', () => {
  const reader = new RangeReader();
  afterAll(() => reader.close());

  it('reads raw_data, typed fields and external ranges', () => {
    expect([...tensorBytes(tensorProto('r', TensorType.UINT8, [3], Uint8Array.from([1, 2, 3])), tmp, reader)]).toEqual([1, 2, 3]);
    const typed = create(TensorProtoSchema, { name: 'f', dataType: TensorType.FLOAT, dims: [2n], floatData: [1.5, -2] });
    expect([...new Float32Array(tensorBytes(typed, tmp, reader).slice().buffer)]).toEqual([1.5, -2]);
    const i64 = create(TensorProtoSchema, { name: 'i', dataType: TensorType.INT64, dims: [1n], int64Data: [-3n] });
    expect([...new BigInt64Array(tensorBytes(i64, tmp, reader).slice().buffer)]).toEqual([-3n]);
    fs.writeFileSync(path.join(tmp, 'd.data'), Buffer.from('0123456789'));
    const ext = tensorProto('e', TensorType.UINT8, [4], null, { location: 'd.data', offset: 3, length: 4 });
    expect(Buffer.from(tensorBytes(ext, tmp, reader)).toString()).toBe('3456');
    expect(externalRef(ext)).toEqual({ location: 'd.data', offset: 3, length: 4 });
    const past = tensorProto('p', TensorType.UINT8, [4], null, { location: 'd.data', offset: 8, length: 4 });
    expect(() => tensorBytes(past, tmp, reader)).toThrow(/runs past the end of the file \(10 bytes\)/);
    const missing = tensorProto('m', TensorType.UINT8, [1], null, { location: 'nope.data', offset: 0, length: 1 });
    expect(() => tensorBytes(missing, tmp, reader)).toThrow(/external data file not found/);
  });

  it('reads and copies ranges beyond 2 GiB of a sparse file (no disk used), never the whole file', () => {
    const big = path.join(tmp, 'sparse.data');
    const size = 2520645120; // the file of issue 11 that one readFileSync could not read
    const fd = fs.openSync(big, 'w');
    fs.ftruncateSync(fd, size);
    const at = 2 ** 31 + 12345;
    fs.writeSync(fd, Buffer.from('weights!'), 0, 8, at);
    fs.writeSync(fd, Buffer.from('end'), 0, 3, size - 3);
    fs.closeSync(fd);
    expect(() => fs.readFileSync(big)).toThrow(/greater than 2 GiB|File size/);

    const r = new RangeReader();
    expect(r.size(big)).toBe(size);
    expect(r.read(big, at, 8).toString()).toBe('weights!');
    expect(r.read(big, size - 3, 3).toString()).toBe('end');
    expect(() => r.read(big, size - 2, 3)).toThrow(/runs past the end/);
    const w = new ExternalDataWriter(path.join(tmp, 'copy.data'));
    w.append(Uint8Array.from([9]));
    const ref = w.appendRange(r, big, at - 4, 12);
    w.close();
    r.close();
    expect(ref).toEqual({ location: 'copy.data', offset: 64, length: 12 }); // 64-byte aligned
    expect(
      fs
        .readFileSync(path.join(tmp, 'copy.data'))
        .subarray(64)
        .equals(Buffer.concat([Buffer.alloc(4), Buffer.from('weights!')])),
    ).toBe(true);
  });
});
