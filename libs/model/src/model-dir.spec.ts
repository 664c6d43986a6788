import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildTinyModel } from './tiny';
import { ModelDirError, checkGraphContract, loadModelDir, readManifest, readManifestFile } from './model-dir';
import { inspectOnnx } from './onnx';
import { ManifestSchema, graphInputNames, graphOutputNames, layerIoNames } from './manifest';

describe('loadModelDir contract validation', () => {
  let tmp: string;
  let n = 0;
  beforeAll(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-dir-'))));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const fresh = (o: Parameters<typeof buildTinyModel>[1] = {}) =>
    buildTinyModel(path.join(tmp, `m${n++}`), { config: { vocab_size: 100, num_layers: 2 }, ...o }).dir;
  const editManifest = (dir: string, f: (m: Record<string, any>) => void) => {
    const p = path.join(dir, 'dllm.json');
    const m = JSON.parse(fs.readFileSync(p, 'utf8'));
    f(m);
    fs.writeFileSync(p, JSON.stringify(m));
  };

  it('reads the manifest alone (one reader for every tool), keeping unknown keys in `raw`', () => {
    const dir = fresh();
    editManifest(dir, (m) => (m.x_tool = { a: 1 }));
    const { manifest, raw } = readManifestFile(dir);
    expect(manifest.architecture.num_layers).toBe(2);
    expect(raw.x_tool).toEqual({ a: 1 });
    expect(readManifest(dir).version).toBe(manifest.version);
    editManifest(dir, (m) => (m.tokens.mask = 1000));
    expect(() => readManifest(dir)).toThrow(ModelDirError);
    expect(() => readManifest(dir)).toThrow(/tokens.mask: mask token id 1000 is outside the vocabulary/);
    expect(() => readManifest(path.join(tmp, 'nowhere'))).toThrow(/nowhere: does not exist or is not a directory/);
    fs.mkdirSync(path.join(tmp, 'empty'));
    expect(() => readManifest(path.join(tmp, 'empty'))).toThrow(/missing dllm.json/);
  });

  it('names the KV-cache graph I/O of each layer consistently with graphInputNames / graphOutputNames', () => {
    expect(layerIoNames(1)).toEqual({ pastKey: 'past_key.1', pastValue: 'past_value.1', presentKey: 'present_key.1', presentValue: 'present_value.1' });
    const kvIn = [0, 1].flatMap((i) => [layerIoNames(i).pastKey, layerIoNames(i).pastValue]);
    const kvOut = [0, 1].flatMap((i) => [layerIoNames(i).presentKey, layerIoNames(i).presentValue]);
    expect(graphInputNames(2)).toEqual(['input_ids', 'position_ids', 'attention_mask', 'logit_index', 'banned_token_ids', ...kvIn]);
    expect(graphOutputNames(2)).toEqual(['logits', 'argmax', 'max_prob', 'log_sum_exp', 'entropy', ...kvOut]);
    expect(graphInputNames(2, 'dllm-farm/v1')).toEqual(['input_ids', 'position_ids', 'attention_mask', ...kvIn]);
    expect(graphOutputNames(2, 'dllm-farm/v1')).toEqual(['logits', ...kvOut]);
  });

  it('loads a valid directory without opening onnxruntime, reading the graph header', async () => {
    const dir = fresh();
    const m = await loadModelDir(dir);
    expect(m.session).toBeUndefined();
    expect(m.manifest.format).toBe('dllm-farm/v2');
    expect(m.graph.inputs.map((i) => i.name)).toEqual([
      'input_ids',
      'position_ids',
      'attention_mask',
      'logit_index',
      'banned_token_ids',
      'past_key.0',
      'past_value.0',
      'past_key.1',
      'past_value.1',
    ]);
    expect(m.graph.outputs.find((o) => o.name === 'logits')!.shape).toEqual(['batch', 'drawn', 100]);
    expect(m.graph.outputs.map((o) => o.name).slice(0, 5)).toEqual(['logits', 'argmax', 'max_prob', 'log_sum_exp', 'entropy']);
    expect(m.graph.opsets['']).toBe(17);
    expect(m.tokenizer.vocabSize).toBe(99);
    expect(m.tokenizer.tokenToId('<|mask|>')).toBe(2);
    expect(m.tokenizer.decode([2, ...m.tokenizer.encode('a+b'), 1])).toBe('a+b');
  });

  it('names the missing file', async () => {
    for (const f of ['dllm.json', 'model.onnx', 'tokenizer.json']) {
      const dir = fresh();
      fs.rmSync(path.join(dir, f));
      await expect(loadModelDir(dir)).rejects.toThrow(new RegExp(`missing ${f.replace('.', '\\.')}`));
    }
    await expect(loadModelDir(path.join(tmp, 'absent'))).rejects.toThrow(/does not exist/);
  });

  it('names a missing or bad manifest field and token ids outside the vocabulary', async () => {
    const dir = fresh();
    editManifest(dir, (m) => delete m.block_size);
    await expect(loadModelDir(dir)).rejects.toThrow(/block_size: /);
    editManifest(dir, (m) => {
      m.block_size = 4;
      m.tokens.mask = 100;
    });
    await expect(loadModelDir(dir)).rejects.toThrow(/tokens.mask: mask token id 100 is outside the vocabulary \(vocab_size 100\)/);
    editManifest(dir, (m) => {
      m.tokens.mask = 2;
      m.dtype = 'bfloat16';
    });
    await expect(loadModelDir(dir)).rejects.toThrow(/dtype/);
    editManifest(dir, (m) => {
      m.dtype = 'float32';
      m.kind = 'diffusion';
    });
    await expect(loadModelDir(dir)).rejects.toThrow(/kind/);
    fs.writeFileSync(path.join(dir, 'dllm.json'), '{ nope');
    await expect(loadModelDir(dir)).rejects.toThrow(/dllm.json is not valid JSON/);
  });

  it('rejects a graph that does not match the manifest', async () => {
    const dir = fresh();
    editManifest(dir, (m) => (m.architecture.num_layers = 3));
    await expect(loadModelDir(dir)).rejects.toThrow(/lacks input\(s\) past_key.2, past_value.2/);
    editManifest(dir, (m) => {
      m.architecture.num_layers = 2;
      m.vocab_size = 120;
    });
    await expect(loadModelDir(dir)).rejects.toThrow(/logits dimension 2 is 100, expected 120/);
    editManifest(dir, (m) => {
      m.vocab_size = 100;
      m.architecture.head_dim = 16;
    });
    await expect(loadModelDir(dir)).rejects.toThrow(/past_key.0 dimension 3 is 8, expected 16/);
    fs.writeFileSync(path.join(dir, 'model.onnx'), Buffer.from('this is not protobuf at all'));
    await expect(loadModelDir(dir)).rejects.toThrow(/model.onnx is not a readable ONNX model/);
  });

  it('refuses an older format with a message naming the rebuild (export, then convert), and an unknown one', async () => {
    const dir = fresh();
    editManifest(dir, (m) => (m.format = 'dllm-farm/v1'));
    await expect(loadModelDir(dir)).rejects.toThrow(/model format dllm-farm\/v1 is older than dllm-farm\/v2.*dllm-farm export .*dllm-farm convert/);
    // export may read it back out; its v2 graph then breaks the v1 contract it claims
    await expect(loadModelDir(dir, { allowOlderFormat: true })).rejects.toThrow(/unexpected input\(s\) logit_index, banned_token_ids/);
    editManifest(dir, (m) => (m.format = 'dllm-farm/v9'));
    await expect(loadModelDir(dir)).rejects.toThrow(/unknown model format "dllm-farm\/v9" \(this version reads dllm-farm\/v1, dllm-farm\/v2\)/);
  });

  it('rejects a v2 graph without the draw head', async () => {
    const dir = fresh();
    editManifest(dir, (m) => (m.architecture.num_layers = 2));
    const m = await loadModelDir(dir);
    const g = { ...m.graph, inputs: m.graph.inputs.filter((i) => i.name !== 'logit_index'), outputs: m.graph.outputs.filter((o) => o.name !== 'entropy') };
    expect(checkGraphContract(g, m.manifest).join('; ')).toMatch(/lacks input\(s\) logit_index.*lacks output\(s\) entropy/);
  });

  it('rejects a tokenizer larger than the model vocabulary', async () => {
    const dir = fresh({ config: { vocab_size: 50 } });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), fs.readFileSync(path.join(fresh(), 'tokenizer.json')));
    await expect(loadModelDir(dir)).rejects.toThrow(/tokenizer.json has 99 tokens but the model's vocab_size is 50/);
  });

  it('exports a zod schema that accepts a quantization passthrough object', () => {
    const dir = fresh();
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'dllm.json'), 'utf8'));
    const q = { scheme: 'int4', bits: 4, group_size: 32, method: 'rtn', kept_fp32: [], extra: [1] };
    expect(ManifestSchema.parse({ ...m, quantization: q }).quantization).toEqual(q);
    expect(() => ManifestSchema.parse({ ...m, quantization: { method: 'rtn', bits: 4 } })).toThrow(/scheme/);
    expect(inspectOnnx(path.join(dir, 'model.onnx')).externalFiles).toEqual([]);
  });

  it('reads decode_defaults (wire names, typed) and refuses unknown keys or wrong types', () => {
    const dir = fresh();
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'dllm.json'), 'utf8'));
    expect(ManifestSchema.parse({ ...m, decode_defaults: { sub_block_size: 32, threshold: 0.8 } }).decode_defaults).toEqual({
      sub_block_size: 32,
      threshold: 0.8,
    });
    expect(ManifestSchema.parse(m).decode_defaults).toBeUndefined();
    expect(() => ManifestSchema.parse({ ...m, decode_defaults: { subBlockSize: 32 } })).toThrow(/subBlockSize/);
    expect(() => ManifestSchema.parse({ ...m, decode_defaults: { sub_block_size: '32' } })).toThrow(/sub_block_size/);
  });
});
