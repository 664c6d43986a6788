import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeModel } from '@dllm/onnx';
import { floatTensor, loadOnnx, parseOnnx, writeOnnx } from './onnx';
import { quantizeOnnx } from './quantize';
import { buildLinearStack, randomWeights } from './synthetic';

const layers = [
  { name: 'l0', K: 64, N: 32, w: randomWeights(64, 32, 1) },
  { name: 'lm_head', K: 32, N: 16, w: randomWeights(32, 16, 2) },
];

/** protobuf field `no` (length-delimited) holding `payload`; field numbers < 2048, payloads < 128 bytes. */
function lenField(no: number, payload: Uint8Array): Buffer {
  const key = (no << 3) | 2;
  return Buffer.concat([Buffer.from(key < 128 ? [key] : [(key & 0x7f) | 0x80, key >> 7]), Buffer.from([payload.length]), payload]);
}

test('quantizing keeps fields our onnx.proto does not know (model and graph level)', () => {
  const bytes = Buffer.concat([
    buildLinearStack({ layers }),
    lenField(1000, Buffer.from('future-model')),
    lenField(7, lenField(1001, Buffer.from('future-graph'))),
  ]);
  const q = decodeModel(quantizeOnnx(parseOnnx(bytes), { scheme: 'int4', groupSize: 32 }).bytes);
  expect(q.graph!.node.map((n) => n.opType)).toEqual(['MatMulNBits', 'Relu', 'MatMul']);
  expect(q.$unknown?.map((u) => [u.no, Buffer.from(u.data).toString()])).toEqual([[1000, expect.stringContaining('future-model')]]);
  expect(q.graph!.$unknown?.map((u) => [u.no, Buffer.from(u.data).toString()])).toEqual([[1001, expect.stringContaining('future-graph')]]);
});

test('writeOnnx moves weights to an external data file and reads them back by ranges, unchanged', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-quant-onnx-'));
  try {
    const file = path.join(tmp, 'model.onnx');
    const src = parseOnnx(buildLinearStack({ layers }), tmp);
    const r = writeOnnx(src, {}, file, { externalData: true });
    expect(r.dataFile).toBe(`${file}.data`);
    expect(r.bytes).toBe(fs.statSync(file).size + fs.statSync(`${file}.data`).size);
    const back = loadOnnx(file);
    for (const l of layers) expect(floatTensor(back, l.name).data).toEqual(l.w);
    // and back inline from the external copy
    const inline = path.join(tmp, 'inline.onnx');
    expect(writeOnnx(back, {}, inline).dataFile).toBeNull();
    for (const l of layers) expect(floatTensor(loadOnnx(inline), l.name).data).toEqual(l.w);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
