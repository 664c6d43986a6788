// `dllm-farm export --format transformers.js` on the bundled tiny-ar (format dllm-farm/v2): transformers.js
// loads the folder offline and gives the engine runner's logits (max abs diff < 1e-4, every position drawn
// through logit_index) and the engine's greedy text.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Engine, OrtRunner, type RunnerTensor } from '@dllm/engine';
import { MODEL_FORMAT, Tokenizer } from '@dllm/model';
import { loadOnnx } from './onnx';
import { problems } from '@dllm/tasks';
import { exportTransformersJs, TJS_MASK_BLOCKED } from './export-transformersjs';

interface ProbeResult {
  ids: number[];
  logitsDims: number[];
  logits: number[];
  generated: number[];
  text: string;
}

const root = path.resolve(__dirname, '../../..');
const AR = path.join(root, 'models/tiny-ar');
const DLLM = path.join(root, 'models/tiny-dllm');
const MAX_NEW = 48;
const manifest = JSON.parse(fs.readFileSync(path.join(AR, 'dllm.json'), 'utf8'));
const prompts = [...problems('arith', { split: 'test', seed: 0, n: 3 }), ...problems('string', { split: 'test', seed: 0, n: 3 })].map((p) => p.prompt);

let tmp: string;
let probe: { inputNames: string[]; outputNames: string[]; results: ProbeResult[] };

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-tjs-export-'));
  exportTransformersJs(AR, path.join(tmp, 'tiny-ar'));
  fs.writeFileSync(path.join(tmp, 'prompts.json'), JSON.stringify(prompts));
  // transformers.js runs in a plain child process (see testing/transformersjs-probe.js), offline.
  const args = [path.join(__dirname, 'testing/transformersjs-probe.js'), path.join(tmp, 'tiny-ar'), String(MAX_NEW), path.join(tmp, 'prompts.json')];
  const stdout = execFileSync(process.execPath, args, {
    cwd: root,
    maxBuffer: 256 * 1024 * 1024,
    encoding: 'utf8',
  });
  probe = JSON.parse(stdout);
}, 120_000);

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('export --format transformers.js', () => {
  it('writes the HF-style folder transformers.js expects', () => {
    const dir = path.join(tmp, 'tiny-ar');
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model.onnx']) {
      expect(fs.existsSync(path.join(dir, f))).toBe(true);
    }
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({ model_type: 'qwen2', num_hidden_layers: 4, num_key_value_heads: 2, head_dim: 32, vocab_size: 90 });
    const inputs = ['input_ids', 'attention_mask', 'position_ids', 'past_key_values.0.key', 'past_key_values.3.value'];
    expect(probe.inputNames).toEqual(expect.arrayContaining(inputs));
    expect(probe.outputNames).toEqual(expect.arrayContaining(['logits', 'present.0.key', 'present.3.value']));
    // v2's draw inputs are built inside the wrapper, its statistics outputs are dropped.
    const g = loadOnnx(path.join(dir, 'onnx/model.onnx'));
    expect(g.inputs.map((x) => x.name).sort()).toEqual(
      ['input_ids', 'attention_mask', 'position_ids', ...[0, 1, 2, 3].flatMap((i) => [`past_key_values.${i}.key`, `past_key_values.${i}.value`])].sort(),
    );
    expect(g.outputs.map((x) => x.name).sort()).toEqual(['logits', ...[0, 1, 2, 3].flatMap((i) => [`present.${i}.key`, `present.${i}.value`])].sort());
    expect(g.nodes.some((n) => n.outputs.includes('logit_index'))).toBe(true);
  });

  it('the tokenizer encodes as the project tokenizer does', () => {
    const ours = Tokenizer.fromFile(path.join(AR, 'tokenizer.json'));
    prompts.forEach((p, i) => expect(probe.results[i].ids).toEqual(ours.encode(p)));
  });

  it('gives the engine runner logits (max abs diff < 1e-4) on every position of several prompts', async () => {
    expect(manifest.format).toBe(MODEL_FORMAT);
    const runner = await OrtRunner.create({ modelPath: path.join(AR, 'model.onnx'), intraOpThreads: 1 });
    try {
      const { num_layers: L, num_key_value_heads: Hkv, head_dim: Dh } = manifest.architecture;
      for (const r of probe.results) {
        const S = r.ids.length;
        // The engine's causal prompt forward: additive mask, blocked = MASK_BLOCKED (-1e9), empty past.
        const mask = new Float32Array(S * S);
        for (let q = 0; q < S; q++) for (let k = q + 1; k < S; k++) mask[q * S + k] = TJS_MASK_BLOCKED;
        const feeds: Record<string, RunnerTensor> = {
          input_ids: { type: 'int64', dims: [1, S], data: BigInt64Array.from(r.ids.map(BigInt)) },
          position_ids: { type: 'int64', dims: [1, S], data: BigInt64Array.from(r.ids.map((_, i) => BigInt(i))) },
          attention_mask: { type: 'float32', dims: [1, 1, S, S], data: mask },
          // v2: draw every position (the served graph's LM head runs on logit_index rows only), MASK banned as the engine bans it.
          logit_index: { type: 'int64', dims: [1, S], data: BigInt64Array.from(r.ids.map((_, i) => BigInt(i))) },
          banned_token_ids: { type: 'int64', dims: [1], data: BigInt64Array.from([BigInt(manifest.tokens.mask)]) },
        };
        for (let i = 0; i < L; i++) {
          for (const kv of ['key', 'value']) feeds[`past_${kv}.${i}`] = { type: 'float32', dims: [1, Hkv, 0, Dh], data: new Float32Array(0) };
        }
        const ref = (await runner.run(feeds, ['logits'])).outputs.logits;
        expect(r.logitsDims).toEqual(ref.dims);
        let maxDiff = 0;
        const refData = ref.data as Float32Array;
        expect(refData.length).toBe(r.logits.length);
        for (let i = 0; i < r.logits.length; i++) maxDiff = Math.max(maxDiff, Math.abs(r.logits[i] - refData[i]));
        expect(maxDiff).toBeLessThan(1e-4);
      }
    } finally {
      await runner.close();
    }
  }, 60_000);

  it('greedy generate() gives the engine ar policy tokens and text (KV cache path included)', async () => {
    const engine = await Engine.create({ modelDir: AR, intraOpThreads: 1 });
    try {
      for (let i = 0; i < prompts.length; i++) {
        const e = await engine.generate({ prompt: prompts[i], options: { policy: 'ar', maxNewTokens: MAX_NEW } });
        expect(probe.results[i].generated).toEqual(e.tokenIds);
        expect(probe.results[i].text).toBe(e.text);
      }
    } finally {
      await engine.close();
    }
  }, 120_000);

  it('refuses a block-diffusion model with a message that says why', () => {
    expect(() => exportTransformersJs(DLLM, path.join(tmp, 'dllm'))).toThrow(/block-diffusion|trained on/);
    expect(fs.existsSync(path.join(tmp, 'dllm'))).toBe(false);
  });

  it("refuses a dllm-farm/v1 directory with the loader's rebuild message", () => {
    const v1 = path.join(tmp, 'v1');
    fs.mkdirSync(v1);
    for (const f of ['tokenizer.json', 'model.onnx']) fs.copyFileSync(path.join(AR, f), path.join(v1, f));
    fs.writeFileSync(path.join(v1, 'dllm.json'), JSON.stringify({ ...manifest, format: 'dllm-farm/v1' }));
    expect(() => exportTransformersJs(v1, path.join(tmp, 'v1-out'))).toThrow(/dllm-farm\/v1 is older than dllm-farm\/v2.*dllm-farm export .*dllm-farm convert/);
    expect(fs.existsSync(path.join(tmp, 'v1-out'))).toBe(false);
  });

  it('refuses a graph without the dllm-farm/v2 decoder signature', () => {
    const bad = path.join(tmp, 'bad');
    fs.mkdirSync(bad);
    for (const f of ['dllm.json', 'tokenizer.json', 'config.json']) fs.copyFileSync(path.join(AR, f), path.join(bad, f));
    const m = JSON.parse(fs.readFileSync(path.join(AR, 'dllm.json'), 'utf8'));
    m.architecture.num_layers = 5; // the graph has 4 layers of past inputs
    fs.writeFileSync(path.join(bad, 'dllm.json'), JSON.stringify(m));
    fs.copyFileSync(path.join(AR, 'model.onnx'), path.join(bad, 'model.onnx'));
    expect(() => exportTransformersJs(bad, path.join(tmp, 'bad-out'))).toThrow(/decoder signature/);
  });
});
