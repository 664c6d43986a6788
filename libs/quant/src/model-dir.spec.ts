import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findLinears } from './quantize';
import { decodeModel, encodeModel, tensorProto } from '@dllm/onnx';
import { loadOnnx, tensorBytes } from './onnx';
import { readManifest } from '@dllm/model';
import { manifestQuantization, quantizeModelDir } from './model-dir';
import { buildLinearStack, randomWeights } from './synthetic';

let tmp: string;
let src: string;
// A valid dllm-farm manifest (read through libs/model's one reader) over a linear-stack graph; `x_note` is
// a key the schema does not know, which quantize must carry over.
const architecture = {
  type: 'qwen2',
  hidden_size: 64,
  intermediate_size: 128,
  num_layers: 1,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  max_position_embeddings: 256,
  tie_word_embeddings: false,
};
const manifest = {
  format: 'dllm-farm/v1',
  name: 'synthetic',
  version: '0.3.0',
  kind: 'block-diffusion',
  architecture,
  vocab_size: 40,
  dtype: 'float32',
  block_size: 32,
  tokens: { mask: 1, eos: 2, pad: 0 },
  graph: { inputs: ['x'], outputs: ['logits'] },
  x_note: 'kept',
};

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-quant-'));
  src = path.join(tmp, 'fp32');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'dllm.json'), JSON.stringify(manifest));
  fs.writeFileSync(path.join(src, 'tokenizer.json'), '{"model":{}}');
  fs.writeFileSync(
    path.join(src, 'model.onnx'),
    buildLinearStack({
      layers: [
        { name: 'layers.0.mlp.down_proj.weight', K: 128, N: 64, w: randomWeights(128, 64, 1) },
        { name: 'lm_head.weight', K: 64, N: 40, w: randomWeights(64, 40, 2) },
      ],
    }),
  );
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('manifest round trip: record, version suffix, other fields and files kept', async () => {
  const out = path.join(tmp, 'int4');
  const r = await quantizeModelDir(src, out, { scheme: 'int4', groupSize: 64 });
  expect(r.version).toBe('0.3.0+int4-g64-rtn');
  const m = readManifest(out);
  expect(m.version).toBe('0.3.0+int4-g64-rtn');
  expect(m.name).toBe('synthetic');
  expect(m.tokens).toEqual(manifest.tokens);
  expect(m.graph).toEqual({ ...manifest.graph, external_data: null });
  expect(JSON.parse(fs.readFileSync(path.join(out, 'dllm.json'), 'utf8')).x_note).toBe('kept');
  const q = manifestQuantization(out)!;
  expect(q).toMatchObject({ scheme: 'int4', bits: 4, group_size: 64, method: 'rtn', kept_fp32: ['lm_head.weight'], kernel: 'MatMulNBits' });
  expect(manifestQuantization(src)).toBeNull();
  expect(fs.readFileSync(path.join(out, 'tokenizer.json'), 'utf8')).toBe('{"model":{}}');
  expect(findLinears(loadOnnx(path.join(out, 'model.onnx'))).map((l) => l.weight)).toEqual(['lm_head.weight']);
  expect(r.sizeOut).toBeLessThan(r.sizeIn);
});

test('int8 has no group size in its version or record', async () => {
  const r = await quantizeModelDir(src, path.join(tmp, 'int8'), { scheme: 'int8' });
  expect(r.version).toBe('0.3.0+int8-rtn');
  expect(r.record).toMatchObject({ scheme: 'int8', bits: 8, group_size: null, kernel: 'DequantizeLinear+MatMul' });
});

test('int3 says its codes live in 4-bit containers', async () => {
  const r = await quantizeModelDir(src, path.join(tmp, 'int3'), { scheme: 'int3', groupSize: 32 });
  expect(r.record).toMatchObject({ bits: 3, container_bits: 4 });
  expect(r.version).toBe('0.3.0+int3-g32-rtn');
});

describe('bad input is rejected with a clear error', () => {
  test.each([
    [{ scheme: 'int5' }, /--weights must be one of int8, int4, int3, got "int5"/],
    [{ scheme: 'int4', groupSize: 48 }, /--group-size must be one of 32, 64, 128/],
    [{ scheme: 'int4', method: 'awq' }, /--method must be one of rtn, gptq/],
    [{ scheme: 'int4', accuracyLevel: 7 }, /--accuracy-level must be 0-4/],
    [{ scheme: 'int8', method: 'gptq' }, /gptq needs a block scheme/],
  ])('%j', async (opts, msg) => {
    await expect(quantizeModelDir(src, path.join(tmp, 'bad'), opts as never)).rejects.toThrow(msg);
  });

  test('already quantized, same dir, non-empty output, not a model', async () => {
    const q = path.join(tmp, 'q-src');
    await quantizeModelDir(src, q, { scheme: 'int4' });
    await expect(quantizeModelDir(q, path.join(tmp, 'q2'), { scheme: 'int4' })).rejects.toThrow(/already quantized/);
    await expect(quantizeModelDir(src, src, { scheme: 'int4' })).rejects.toThrow(/must differ/);
    await expect(quantizeModelDir(src, q, { scheme: 'int4' })).rejects.toThrow(/not empty \(pass --force/);
    await expect(quantizeModelDir(src, q, { scheme: 'int8' }, { force: true })).resolves.toBeDefined();
    await expect(quantizeModelDir(tmp, path.join(tmp, 'x'), { scheme: 'int4' })).rejects.toThrow(/missing dllm.json/);
    const bad = path.join(tmp, 'bad-manifest');
    fs.cpSync(src, bad, { recursive: true });
    fs.writeFileSync(path.join(bad, 'dllm.json'), JSON.stringify({ ...manifest, version: '' }));
    await expect(quantizeModelDir(bad, path.join(tmp, 'x'), { scheme: 'int4' })).rejects.toThrow(/invalid manifest: version/);
  });
});

test('quantize reads external data above 2 GiB by ranges (issue 11: "File size (2520645120) is greater than 2 GiB")', async () => {
  // The source keeps its weights at offsets past 2 GiB of a 2,520,645,120-byte data file: sparse, so it costs no disk.
  const big = path.join(tmp, 'big-external');
  fs.mkdirSync(big);
  for (const f of ['dllm.json', 'tokenizer.json']) fs.copyFileSync(path.join(src, f), path.join(big, f));
  const m = decodeModel(fs.readFileSync(path.join(src, 'model.onnx')));
  const fd = fs.openSync(path.join(big, 'model.onnx.data'), 'w');
  let offset = 2 ** 31 + 4096;
  m.graph!.initializer = m.graph!.initializer.map((t) => {
    fs.writeSync(fd, t.rawData, 0, t.rawData.length, offset);
    const ext = tensorProto(t.name, t.dataType, t.dims.map(Number), null, { location: 'model.onnx.data', offset, length: t.rawData.length });
    offset += t.rawData.length + 64 - (t.rawData.length % 64);
    return ext;
  });
  fs.ftruncateSync(fd, 2520645120);
  fs.closeSync(fd);
  fs.writeFileSync(path.join(big, 'model.onnx'), encodeModel(m));

  const out = path.join(tmp, 'big-int8');
  const r = await quantizeModelDir(big, out, { scheme: 'int8' });
  expect(r.sizeIn).toBeGreaterThan(2520645120);
  expect(readManifest(out).graph?.external_data).toBe('model.onnx.data');
  expect(fs.statSync(path.join(out, 'model.onnx.data')).size).toBeLessThan(1 << 20); // only the ranges in use are copied
  // the same weights quantized from the inline model give the same tensors and nodes
  const inline = await quantizeModelDir(src, path.join(tmp, 'big-int8-ref'), { scheme: 'int8' });
  const a = loadOnnx(path.join(out, 'model.onnx'));
  const b = loadOnnx(path.join(inline.outDir, 'model.onnx'));
  expect(a.nodes.map((n) => [n.opType, n.inputs, n.outputs])).toEqual(b.nodes.map((n) => [n.opType, n.inputs, n.outputs]));
  expect([...a.initializers.keys()].sort()).toEqual([...b.initializers.keys()].sort());
  for (const [name, t] of a.initializers) expect(Buffer.from(tensorBytes(a, t)).equals(Buffer.from(tensorBytes(b, b.initializers.get(name)!)))).toBe(true);
});
