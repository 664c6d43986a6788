// Pins the first outputs of every seeded stream. The expected values were computed by the five
// generators as they were before they moved here (libs/engine/src/rng.ts, libs/tasks/src/rng.ts,
// libs/model/src/tiny.ts seededRandom, libs/quant/src/synthetic.ts randomWeights and the mask draw
// in libs/quant/src/activations.ts calibrationIds). Seeds are a data contract: if this fails, a
// generator changed what it yields, which silently changes datasets, sampled tokens and test models.
import { ProblemRng, Sfc32, fnv1a, mulberry32, normalFloats, xorshift32 } from './index';

describe('Sfc32 (engine sampling)', () => {
  const pins: Record<string, number[]> = {
    '0': [591558436, 2737234123, 107644106, 0.3116550041886491, 0.638856748357781, 7],
    '1': [792534090, 3215351813, 160231488, 0.26799764084395006, 0.06348736072647276, 7],
    '42': [2476999517, 2284424721, 914527439, 0.7912528010770468, 0.7856360587472079, 7],
    '4294967295': [401775837, 815230463, 1635982147, 0.6456827153752611, 0.7555298755114281, 7],
    '123456789': [3554743994, 233182047, 3731754732, 0.6852888820767438, 0.008066323467441516, 7],
  };
  it.each(Object.entries(pins))('seed %s', (seed, want) => {
    const r = new Sfc32(Number(seed));
    expect([r.nextU32(), r.nextU32(), r.nextU32(), r.next(), r.next(), r.draws]).toEqual(want);
  });
});

describe('ProblemRng (task suite)', () => {
  const pins: Record<string, (number | string)[]> = {
    '0': [0.5390442491043359, 0.003708331612870097, 1, 80, 'b'],
    '1': [0.19340510969050229, 0.4022797711659223, 6, -96, 'c'],
    '42': [0.3695809212513268, 0.582251031184569, 5, 14, 'b'],
    '1099511627779': [0.41690571093931794, 0.13435927988030016, 4, 83, 'b'],
    '-5': [0.7825922211632133, 0.5958075071685016, 4, 14, 'b'],
  };
  it.each(Object.entries(pins))('seed %s', (seed, want) => {
    const r = new ProblemRng(Number(seed));
    expect([r.float(), r.float(), r.int(0, 9), r.int(-100, 100), r.pick(['a', 'b', 'c'])]).toEqual(want);
  });
  it('rejects a seed that is not a safe integer', () => {
    expect(() => new ProblemRng(1.5)).toThrow(RangeError);
  });
});

describe('mulberry32 (tiny model weights)', () => {
  const pins: Record<string, number[]> = {
    '0': [0.26642920868471265, 0.0003297457005828619, 0.2232720274478197, 0.1462021479383111],
    '1': [0.6270739405881613, 0.002735721180215478, 0.5274470399599522, 0.9810509674716741],
    '7': [0.011704753153026104, 0.06195825757458806, 0.97690763277933, 0.6990287057124078],
    '3735928559': [0.9413696140982211, 0.26719574979506433, 0.772033357527107, 0.35816076025366783],
  };
  it.each(Object.entries(pins))('seed %s', (seed, want) => {
    const f = mulberry32(Number(seed));
    expect([f(), f(), f(), f()]).toEqual(want);
  });
});

describe('normalFloats (synthetic quantization weights, xorshift32 + Box-Muller)', () => {
  const pins: Record<string, number[]> = {
    '0': [4.376933574676514, 0.8857907652854919, 0.4986203610897064, 1.5729326009750366, -0.5328000783920288, -0.5664929747581482],
    '1': [4.376933574676514, 0.8857907652854919, 0.4986203610897064, 1.5729326009750366, -0.5328000783920288, -0.5664929747581482],
    '5': [3.5400519371032715, 0.326813668012619, -0.5272620916366577, -0.448667973279953, -0.3255062997341156, 0.5307105183601379],
    '123': [2.8809845447540283, 0.9430886507034302, -1.2838548421859741, -0.16826066374778748, 0.13306358456611633, 0.5016710758209229],
  };
  it.each(Object.entries(pins))('seed %s', (seed, want) => {
    expect(Array.from(normalFloats(6, Number(seed), 1))).toEqual(want);
  });
  it('seed 7 with the default std 0.05 of randomWeights', () => {
    expect(Array.from(normalFloats(6, 7, 0.05))).toEqual([
      0.151829332113266, -0.00493240961804986, -0.045072391629219055, 0.047072019428014755, 0.06191561371088028, 0.01422269269824028,
    ]);
  });
});

describe('xorshift32 (calibration mask draws)', () => {
  // low bit of the first 16 states for state (seed * 2654435761) >>> 0
  const pins: Record<string, string> = { '1': '1011110011011010', '2': '1000011110000001', '3': '1000111011011010', '1000': '1011000011100001' };
  it.each(Object.entries(pins))('seed %s', (seed, want) => {
    const next = xorshift32((Number(seed) * 2654435761) >>> 0);
    expect(Array.from({ length: 16 }, () => next() & 1).join('')).toBe(want);
  });
  it('replaces the fixed point 0 by 1', () => {
    expect(xorshift32(0)()).toBe(xorshift32(1)());
  });
});

it('fnv1a matches the FNV-1a 32-bit reference values', () => {
  expect(fnv1a('')).toBe(0x811c9dc5);
  expect(fnv1a('a')).toBe(0xe40c292c);
  expect(fnv1a('foobar')).toBe(0xbf9cf968);
});
