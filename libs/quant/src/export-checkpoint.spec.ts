// export is the inverse of convert: every weight comes back under its HF name, bit for bit.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildTinyModel, convertCheckpoint, readSafetensors } from '@dllm/model';
import { exportCheckpoint } from './export-checkpoint';
import { loadOnnx, tensorBytes } from './onnx';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-export-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('exports every weight under its HF name and convert rebuilds the same initializers', async () => {
  const src = path.join(tmp, 'src');
  const tiny = buildTinyModel(src, {
    seed: 3,
    config: {
      vocab_size: 100,
      hidden_size: 64,
      intermediate_size: 96,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
      tie_word_embeddings: false,
      attention_bias: true,
    },
    manifest: { block_size: 8, decode_defaults: { sub_block_size: 8, threshold: 0.8 } },
  });
  const out = path.join(tmp, 'hf');
  const r = exportCheckpoint(src, out);
  const st = readSafetensors(path.join(out, 'model.safetensors'));
  expect(Object.keys(tiny.weights).sort()).toEqual([...st.names()].sort());
  for (const [name, w] of Object.entries(tiny.weights)) expect(Buffer.from(st.get(name).buffer).equals(Buffer.from(w.buffer))).toBe(true);
  expect(r.parameters).toBe(Object.values(tiny.weights).reduce((a, w) => a + w.length, 0));
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
  expect(cfg).toMatchObject({ num_hidden_layers: tiny.manifest.architecture.num_layers, mask_token_id: tiny.manifest.tokens.mask, bd_size: 8 });
  // the model's decoding defaults survive export -> (training) -> convert, as the learner's versions need
  expect(cfg.decode_defaults).toEqual({ sub_block_size: 8, threshold: 0.8 });

  const back = path.join(tmp, 'back');
  const conv = await convertCheckpoint(out, back, { version: tiny.manifest.version, name: tiny.manifest.name });
  expect(conv.manifest.decode_defaults).toEqual({ sub_block_size: 8, threshold: 0.8 });
  const a = loadOnnx(path.join(src, 'model.onnx'));
  const b = loadOnnx(path.join(back, 'model.onnx'));
  expect([...b.initializers.keys()].sort()).toEqual([...a.initializers.keys()].sort());
  for (const [name, t] of a.initializers) expect(Buffer.from(tensorBytes(b, b.initializers.get(name)!)).equals(Buffer.from(tensorBytes(a, t)))).toBe(true);
});

test('refuses a quantized model and a directory that is not a model', () => {
  const src = path.join(tmp, 'q');
  buildTinyModel(src, { seed: 4 });
  const m = JSON.parse(fs.readFileSync(path.join(src, 'dllm.json'), 'utf8'));
  m.quantization = { scheme: 'int4', bits: 4, group_size: 32, method: 'rtn', kept_fp32: [] };
  fs.writeFileSync(path.join(src, 'dllm.json'), JSON.stringify(m));
  expect(() => exportCheckpoint(src, path.join(tmp, 'q-out'))).toThrow(/quantized \(int4\)/);
  expect(() => exportCheckpoint(tmp, path.join(tmp, 'x'))).toThrow(/missing dllm\.json/);
});
