import { resolveOptions } from '../options';
import { adablockPolicy, planAdaptiveBlock } from './adablock';
import { arPolicy } from './ar';
import { entropyPolicy, entropySelect } from './entropy';
import { fastDllmV2Policy, thresholdSelect } from './fast-dllm-v2';
import type { Candidate } from './types';

const c = (slot: number, prob: number, entropy = 1, token = 10 + slot): Candidate => ({ slot, prob, entropy, token, logprob: Math.log(prob) });
const ctx = (o = {}) => ({ options: resolveOptions(o, { kind: 'block-diffusion', blockSize: 32 }, () => 1) });

describe('fast-dllm-v2 threshold rule', () => {
  it('commits every slot strictly above the threshold', () => {
    const got = fastDllmV2Policy.step([c(1, 0.95), c(2, 0.5), c(3, 0.91), c(4, 0.9)], ctx());
    expect(got.map((x) => x.slot)).toEqual([1, 3]); // 0.9 is not > 0.9
  });
  it('always commits at least one: the most confident, lowest slot on ties', () => {
    expect(thresholdSelect([c(1, 0.2), c(2, 0.6), c(3, 0.6)], 0.9).map((x) => x.slot)).toEqual([2]);
    expect(thresholdSelect([], 0.9)).toEqual([]);
  });
  it('threshold 1 means exactly one token per step', () => {
    expect(fastDllmV2Policy.step([c(1, 0.999), c(2, 1)], ctx({ threshold: 1 })).length).toBe(1);
  });
});

describe('entropy rule (dParallel)', () => {
  it('commits every slot with entropy <= tau, else the lowest-entropy one', () => {
    expect(entropyPolicy.step([c(1, 0.5, 0.6), c(2, 0.5, 0.5), c(3, 0.5, 0.1)], ctx()).map((x) => x.slot)).toEqual([2, 3]);
    expect(entropySelect([c(1, 0.9, 2), c(2, 0.1, 1.5), c(3, 0.5, 1.5)], 0.45).map((x) => x.slot)).toEqual([2]);
  });
});

describe('ar', () => {
  it('commits exactly the offered next position', () => {
    expect(arPolicy.step([c(5, 0.01)], ctx()).map((x) => x.slot)).toEqual([5]);
  });
});

describe('adablock block length', () => {
  const delims = new Set([7, 8]);
  it('ends the block right after the most confident delimiter above the threshold', () => {
    const look = [c(1, 0.9, 0, 3), c(2, 0.4, 0, 7), c(3, 0.6, 0, 8), c(4, 0.99, 0, 5)];
    expect(planAdaptiveBlock({ lookahead: look, delimiters: delims, defaultLength: 32, maxLength: 64 }, 0.3)).toBe(4);
  });
  it('uses the default length when no delimiter is confident enough', () => {
    const look = [c(1, 0.9, 0, 3), c(2, 0.2, 0, 7)];
    expect(planAdaptiveBlock({ lookahead: look, delimiters: delims, defaultLength: 32, maxLength: 64 }, 0.3)).toBe(32);
    expect(planAdaptiveBlock({ lookahead: look, delimiters: delims, defaultLength: 32, maxLength: 10 }, 0.3)).toBe(10);
  });
  it('is wired into the adablock policy with the request threshold', () => {
    const look = [c(2, 0.4, 0, 7)];
    expect(adablockPolicy.planBlock!({ lookahead: look, delimiters: delims, defaultLength: 32, maxLength: 64 }, ctx({ delimiterThreshold: 0.5 }))).toBe(32);
    expect(adablockPolicy.planBlock!({ lookahead: look, delimiters: delims, defaultLength: 32, maxLength: 64 }, ctx({ delimiterThreshold: 0.3 }))).toBe(3);
  });
});

describe('resolveOptions', () => {
  it('defaults by model kind and validates ranges', () => {
    expect(resolveOptions({}, { kind: 'block-diffusion', blockSize: 32 }, () => 9)).toMatchObject({
      policy: 'fast-dllm-v2',
      blockSize: 32,
      subBlockSize: 8,
      threshold: 0.9,
      seed: 9,
      maxNewTokens: 256,
    });
    expect(resolveOptions({}, { kind: 'autoregressive', blockSize: 32 }, () => 9).policy).toBe('ar');
    expect(() => resolveOptions({ threshold: 1.5 }, { kind: 'block-diffusion', blockSize: 32 }, () => 1)).toThrow(/threshold/);
    expect(() => resolveOptions({ subBlockSize: 16, blockSize: 8 }, { kind: 'block-diffusion', blockSize: 32 }, () => 1)).toThrow(/subBlockSize/);
    expect(() => resolveOptions({ policy: 'entropy' }, { kind: 'autoregressive', blockSize: 32 }, () => 1)).toThrow(/autoregressive/);
    expect(() => resolveOptions({ bogus: 1 } as never, { kind: 'block-diffusion', blockSize: 32 }, () => 1)).toThrow(/bogus|unrecognized/i);
    expect(() => resolveOptions({ stopTokenIds: [500] }, { kind: 'block-diffusion', blockSize: 32, vocabSize: 100 }, () => 1)).toThrow(/vocabulary/);
  });
});
