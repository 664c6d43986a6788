// The shared request resolver on the bundled models' real manifests and tokenizers: every input of
// issue 13 fault 1 that used to reach the worker (and come back as a 500) is refused here with the
// field it is about. The gateway (payload) and the worker (before engine.generate) both call it.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { resolveDecodeOptions, resolveRequest, unknownModelFacts } from '@dllm/contracts';
import { readModelFacts } from './model-facts';

const root = path.resolve(__dirname, '../../../..');
const dllm = readModelFacts(path.join(root, 'models/tiny-dllm'));
const ar = readModelFacts(path.join(root, 'models/tiny-ar'));

const refused = (r: ReturnType<typeof resolveRequest>) => (r.ok ? [] : r.errors.map((e) => [e.status, e.param, e.code]));

describe('resolveRequest', () => {
  it('reads the facts from the model directory (manifest + tokenizer)', () => {
    expect(dllm).toMatchObject({ kind: 'block-diffusion', blockSize: 32, vocabSize: 90, maxPositions: 256 });
    expect(ar.kind).toBe('autoregressive');
  });

  it('accepts a plain request and counts its prompt tokens with the model tokenizer', () => {
    const r = resolveRequest(dllm, { prompt: 'Q: 1+1=?\nA:', options: { maxNewTokens: 4 } });
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.promptTokens).toBe(dllm.tokenizer!.encode('Q: 1+1=?\nA:').length);
      // tiny-dllm's dllm.json sets decode_defaults.sub_block_size 32 (the whole block)
      expect(r.options).toMatchObject({ policy: 'fast-dllm-v2', blockSize: 32, subBlockSize: 32, maxNewTokens: 4 });
    }
  });

  it('an empty prompt is a 400 on prompt', () => {
    expect(refused(resolveRequest(dllm, { prompt: '' }))).toEqual([[400, 'prompt', 'empty_prompt']]);
    expect(refused(resolveRequest(unknownModelFacts('x'), { prompt: '' }))).toEqual([[400, 'prompt', 'empty_prompt']]);
    expect(refused(resolveRequest(dllm, { promptIds: [] }))).toEqual([[400, 'prompt', 'empty_prompt']]);
  });

  it('a prompt as long as the model positions is context_length_exceeded (counted in tokens, not characters)', () => {
    const n = dllm.maxPositions!;
    const long = 'a'.repeat(n * 2);
    const tokens = dllm.tokenizer!.encode(long).length;
    expect(tokens).toBeGreaterThanOrEqual(n);
    expect(refused(resolveRequest(dllm, { prompt: long }))).toEqual([[400, 'prompt', 'context_length_exceeded']]);
    const fits = dllm.tokenizer!.encode('a'.repeat(n - 1)).length < n;
    if (fits) expect(resolveRequest(dllm, { prompt: 'a'.repeat(n - 1) }).ok).toBe(true);
  });

  it('block_size 7 against the engine-wide default sub-block 8 points at block_size; an explicit sub-block points at itself', () => {
    const noDefaults = { ...dllm, decodeDefaults: undefined };
    expect(refused(resolveRequest(noDefaults, { prompt: 'hi', options: { blockSize: 7 } }))).toEqual([[422, 'options.blockSize', 'invalid_value']]);
    expect(resolveRequest(noDefaults, { prompt: 'hi', options: { blockSize: 7, subBlockSize: 7 } }).ok).toBe(true);
    // tiny-dllm's own default sub-block (the whole block) follows the shorter block
    const r = resolveRequest(dllm, { prompt: 'hi', options: { blockSize: 7 } });
    expect(r.ok && r.options.subBlockSize).toBe(7);
    expect(refused(resolveRequest(dllm, { prompt: 'hi', options: { blockSize: 8, subBlockSize: 9 } }))).toEqual([
      [422, 'options.subBlockSize', 'invalid_value'],
    ]);
    // without model facts an explicit block size is still checked
    expect(refused(resolveRequest(unknownModelFacts('x'), { prompt: 'hi', options: { blockSize: 7 } }))).toEqual([[422, 'options.blockSize', 'invalid_value']]);
  });

  it('a policy the model kind cannot run is unsupported_option on policy', () => {
    expect(refused(resolveRequest(ar, { prompt: 'hi', options: { policy: 'entropy' } }))).toEqual([[422, 'options.policy', 'unsupported_option']]);
    expect(resolveRequest(ar, { prompt: 'hi', options: { policy: 'ar' } }).ok).toBe(true);
  });

  it('token ids outside the vocabulary: stop_token_ids and prompt ids', () => {
    expect(refused(resolveRequest(dllm, { prompt: 'hi', options: { stopTokenIds: [3, 90] } }))).toEqual([[422, 'options.stopTokenIds.1', 'invalid_token_id']]);
    expect(refused(resolveRequest(dllm, { promptIds: [5, 1000, -1] }))).toEqual([
      [400, 'promptIds.1', 'invalid_token_id'],
      [400, 'promptIds.2', 'invalid_token_id'],
    ]);
  });

  it('schema errors come with the option path; every problem is listed', () => {
    const r = resolveRequest(dllm, { prompt: '', options: { threshold: 2, bogus: 1 } });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map((e) => e.param).sort()).toEqual(['options', 'options.threshold', 'prompt'].sort());
  });

  it('resolveDecodeOptions applies the model defaults and draws the seed', () => {
    const r = resolveDecodeOptions({}, ar, () => 42);
    expect(r).toMatchObject({ ok: true, options: { policy: 'ar', blockSize: ar.blockSize, seed: 42 } });
  });
});

describe('layering', () => {
  it('loading @dllm/contracts loads neither the engine nor onnxruntime nor the tokenizer library', () => {
    const script = "require('@dllm/contracts'); console.log(JSON.stringify(Object.keys(require.cache)));";
    const loaded = JSON.parse(execFileSync(process.execPath, ['-r', './test/gateway.register.js', '-e', script], { cwd: root, encoding: 'utf8' })) as string[];
    expect(loaded.filter((f) => /libs[\\/]engine[\\/]|onnxruntime|@huggingface[\\/]tokenizers/.test(f))).toEqual([]);
  });
});
