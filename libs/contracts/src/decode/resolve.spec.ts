// A model's decode_defaults (manifest, like Hugging Face's generation_config.json) as the resolver
// applies them: under every option a request sets, over the engine-wide defaults.
import { modelDecodeDefaults, resolveDecodeOptions, type ModelFacts } from './resolve';

const facts = (decodeDefaults?: ModelFacts['decodeDefaults']): ModelFacts => ({ name: 'm', kind: 'block-diffusion', blockSize: 32, decodeDefaults });
const resolve = (input: unknown, f: ModelFacts) => {
  const r = resolveDecodeOptions(input, f, () => 7);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.options;
};

describe('modelDecodeDefaults', () => {
  it('maps wire names to engine options, keeping only what the manifest sets', () => {
    expect(modelDecodeDefaults({ sub_block_size: 32, threshold: 0.8, sub_block_cache: false }, 'block-diffusion')).toEqual({
      subBlockSize: 32,
      threshold: 0.8,
      subBlockCache: false,
    });
    expect(modelDecodeDefaults(undefined, 'block-diffusion')).toEqual({});
    expect(modelDecodeDefaults(null, 'autoregressive')).toEqual({});
  });

  it('refuses out-of-range values, unknown keys and a non-ar policy on an autoregressive model, naming each', () => {
    expect(() => modelDecodeDefaults({ threshold: 0, sub_block_size: 0 }, 'block-diffusion', 'x/dllm.json')).toThrow(
      /^x\/dllm\.json: .*decode_defaults\.sub_block_size: .*decode_defaults\.threshold: /,
    );
    expect(() => modelDecodeDefaults({ max_tokens: 9 }, 'block-diffusion')).toThrow(/decode_defaults\.max_tokens: not a decoding default/);
    expect(() => modelDecodeDefaults({ policy: 'greedy' }, 'block-diffusion')).toThrow(/decode_defaults\.policy/);
    expect(() => modelDecodeDefaults({ policy: 'fast-dllm-v2' }, 'autoregressive')).toThrow(/autoregressive model decodes with 'ar'/);
    expect(modelDecodeDefaults({ policy: 'ar' }, 'autoregressive')).toEqual({ policy: 'ar' });
  });
});

describe('resolveDecodeOptions with model defaults', () => {
  it('fills what the request leaves unset; the request wins where it sets a value', () => {
    const f = facts({ subBlockSize: 32, threshold: 0.8 });
    expect(resolve(undefined, f)).toMatchObject({ subBlockSize: 32, threshold: 0.8, policy: 'fast-dllm-v2', blockSize: 32 });
    expect(resolve({}, f)).toMatchObject({ subBlockSize: 32, threshold: 0.8 });
    expect(resolve({ subBlockSize: 8 }, f)).toMatchObject({ subBlockSize: 8, threshold: 0.8 });
    expect(resolve({ subBlockSize: undefined, threshold: 0.95 }, f)).toMatchObject({ subBlockSize: 32, threshold: 0.95 });
    // without model defaults: the engine-wide ones
    expect(resolve({}, facts())).toMatchObject({ subBlockSize: 8, threshold: 0.9 });
  });

  it("cuts a model's default sub-block to a shorter block the request asks for; a request's own sub-block is still checked", () => {
    const f = facts({ subBlockSize: 32 });
    expect(resolve({ blockSize: 16 }, f)).toMatchObject({ blockSize: 16, subBlockSize: 16 });
    const r = resolveDecodeOptions({ blockSize: 16, subBlockSize: 32 }, f, () => 7);
    expect(r.ok ? [] : r.errors.map((e) => e.param)).toEqual(['options.subBlockSize']);
  });

  it('still refuses a bad request option the model has a default for', () => {
    const r = resolveDecodeOptions({ threshold: 2 }, facts({ threshold: 0.8 }), () => 7);
    expect(r.ok ? [] : r.errors.map((e) => e.param)).toEqual(['options.threshold']);
    expect(resolveDecodeOptions('nope', facts({ threshold: 0.8 }), () => 7).ok).toBe(false);
  });
});
