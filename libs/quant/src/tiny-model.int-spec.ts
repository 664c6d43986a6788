/** @jest-environment ./libs/model/src/testing/ort-environment.js */
// A real dllm-farm model (libs/model's Qwen2-style graph, seeded weights): quantized, it still runs
// under the graph contract with logits close to fp32's, and the activation report finds an outlier
// channel planted in it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { buildDecoderOnnx, buildTinyModel, loadModelDir, readManifest } from '@dllm/model';
import { parseOnnx, rewriteOnnx } from './onnx';
import { inspectActivations, loadRunInfo, sequenceFeeds, calibrationIds } from './activations';
import { quantizeModelDir } from './model-dir';

let tmp: string;
let fp32: string;
let outlier: string;
const config = { vocab_size: 100, hidden_size: 64, intermediate_size: 128, num_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16 };

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-quant-tiny-'));
  fp32 = path.join(tmp, 'fp32');
  buildTinyModel(fp32, { config, seed: 7 });
  outlier = path.join(tmp, 'outlier');
  buildTinyModel(outlier, {
    config,
    seed: 7,
    // layer 1's MLP input gets one channel 300x the others: a planted "massive" activation
    weights: (name, shape) =>
      name === 'model.layers.1.post_attention_layernorm.weight' ? Float32Array.from({ length: shape[0] }, (_, i) => (i === 5 ? 300 : 1)) : undefined,
  });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function logits(dir: string, text: string): Promise<Float32Array> {
  const info = await loadRunInfo(dir);
  const ids = calibrationIds({ text, promptChars: text.length }, info, 1);
  const s = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), { graphOptimizationLevel: 'all' });
  try {
    return (await s.run(sequenceFeeds(ids, info))).logits.data as Float32Array;
  } finally {
    await s.release();
  }
}

function relErr(a: Float32Array, ref: Float32Array): number {
  let e = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    e = Math.max(e, Math.abs(a[i] - ref[i]));
    m = Math.max(m, Math.abs(ref[i]));
  }
  return e / m;
}

test.each([
  ['int8', 0.03],
  ['int4', 0.2],
  ['int3', 0.4],
] as const)('%s: the quantized model runs under the graph contract, logits within %d of fp32 range', async (scheme, bound) => {
  const out = path.join(tmp, scheme);
  const r = await quantizeModelDir(fp32, out, { scheme, groupSize: 32, keepLmHead: false });
  expect(r.layers.filter((l) => l.quantized).length).toBe(2 * 7 + 1); // q,k,v,o,gate,up,down per layer + lm_head
  const text = 'Q: 12+34=?\nA: 46';
  const ref = await logits(fp32, text);
  const got = await logits(out, text);
  expect(got.length).toBe(ref.length);
  const e = relErr(got, ref);
  if (process.env.QUANT_DEBUG) console.log(scheme, e);
  expect(e).toBeGreaterThan(0);
  expect(e).toBeLessThan(bound);
});

test('inspect-activations flags the planted massive channel, in the right layer and linear', async () => {
  const stats = await inspectActivations(outlier, { perFamily: 2 });
  expect(stats).toHaveLength(2 * 4 + 1); // qkv, o, gate/up, down per layer + lm_head
  const planted = stats.find((s) => s.label === 'layers.1 mlp.gate_proj/mlp.up_proj')!;
  expect(planted).toBeDefined();
  expect(planted.massive).toBe(true);
  expect(planted.outlierChannels[0].channel).toBe(5);
  expect(planted.outlierTokenShare).toBeGreaterThan(0.5);
  const l0 = stats.find((s) => s.label === 'layers.0 mlp.gate_proj/mlp.up_proj')!;
  expect(l0.massive).toBe(false);
  expect((await inspectActivations(fp32, { perFamily: 1 })).filter((s) => s.massive)).toEqual([]);
  for (const s of stats) {
    expect(s.tokens).toBeGreaterThan(10);
    expect(s.p50).toBeLessThanOrEqual(s.p99);
    expect(s.p99).toBeLessThanOrEqual(s.absMax);
  }
});

test.each(['int4', 'int3'] as const)('%s gptq: calibrated on the train split, closer to fp32 than rtn on a test prompt', async (scheme) => {
  const text = 'Q: 517+286=?\nA: 803';
  const ref = await logits(fp32, text);
  const rtn = await quantizeModelDir(fp32, path.join(tmp, `${scheme}-rtn-cmp`), { scheme, groupSize: 32, accuracyLevel: 0 });
  const gptq = await quantizeModelDir(
    fp32,
    path.join(tmp, `${scheme}-gptq`),
    { scheme, groupSize: 32, accuracyLevel: 0, method: 'gptq' },
    { calibration: { perFamily: 8 } },
  );
  expect(gptq.version).toMatch(/-gptq$/);
  expect(gptq.record.method).toBe('gptq');
  const mse = (a: Float32Array) => a.reduce((s, v, i) => s + (v - ref[i]) ** 2, 0) / a.length;
  const eR = mse(await logits(rtn.outDir, text));
  const eG = mse(await logits(gptq.outDir, text));
  if (process.env.QUANT_DEBUG) console.log(scheme, { rtn: eR, gptq: eG });
  expect(eG).toBeLessThan(eR);
});

test('the quantized directory passes libs/model validation (manifest schema and graph contract)', async () => {
  const dir = path.join(tmp, 'validated');
  await quantizeModelDir(fp32, dir, { scheme: 'int4', groupSize: 64 });
  const m = await loadModelDir(dir);
  expect(m.manifest.quantization).toMatchObject({ scheme: 'int4', bits: 4, group_size: 64, method: 'rtn', kept_fp32: ['lm_head.weight_t'] });
  expect(m.manifest.version).toBe('tiny-7+int4-g64-rtn');
});

test('graph surgery keeps an unedited model byte for byte; external data stays external and is read by ranges', async () => {
  const bytes = fs.readFileSync(path.join(fp32, 'model.onnx'));
  expect(Buffer.from(rewriteOnnx(parseOnnx(bytes), {})).equals(bytes)).toBe(true);

  // the same model with its weights in model.onnx.data
  const tiny = buildTinyModel(path.join(tmp, 'inline-src'), { config, seed: 7 });
  const ext = path.join(tmp, 'external');
  fs.mkdirSync(ext);
  buildDecoderOnnx(tiny.manifest.architecture, tiny.manifest.vocab_size, tiny.weights, { outFile: path.join(ext, 'model.onnx'), externalData: true });
  expect(fs.existsSync(path.join(ext, 'model.onnx.data'))).toBe(true);
  fs.copyFileSync(path.join(fp32, 'tokenizer.json'), path.join(ext, 'tokenizer.json'));
  fs.writeFileSync(path.join(ext, 'dllm.json'), JSON.stringify({ ...tiny.manifest, graph: { ...tiny.manifest.graph, external_data: 'model.onnx.data' } }));
  // the data file is never read whole (issue 11: "File size (2520645120) is greater than 2 GiB" came from one readFileSync)
  const whole = jest.spyOn(fs, 'readFileSync');
  const q = await quantizeModelDir(ext, path.join(tmp, 'external-int4'), { scheme: 'int4' });
  expect(whole.mock.calls.filter(([f]) => String(f).endsWith('.data'))).toEqual([]);
  whole.mockRestore();
  expect(fs.existsSync(path.join(q.outDir, 'model.onnx.data'))).toBe(true);
  expect(readManifest(q.outDir).graph).toMatchObject({ external_data: 'model.onnx.data' });
  expect((await loadModelDir(q.outDir)).externalDataPaths).toEqual([path.join(q.outDir, 'model.onnx.data')]);
  const qi = await quantizeModelDir(fp32, path.join(tmp, 'inline-int4'), { scheme: 'int4' });
  const text = 'Q: 9+9=?\nA: 18';
  expect([...(await logits(q.outDir, text))]).toEqual([...(await logits(qi.outDir, text))]);
});
