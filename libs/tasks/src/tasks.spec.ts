import { Tokenizer } from '@huggingface/tokenizers';
import {
  ALPHABET,
  EOS_ID,
  EOS_TOKEN,
  MASK_ID,
  MASK_TOKEN,
  PAD_ID,
  VOCAB_SIZE,
  arith,
  arithSolution,
  applyStringOp,
  buildTokenizerJson,
  delimiterTokenIds,
  encodeChars,
  families,
  getFamily,
  problems,
  splitOf,
  string,
  verifyResponse,
  Rng,
  type Problem,
} from './index';

const FAMILY_NAMES = Object.keys(families);

describe('generators', () => {
  it.each(FAMILY_NAMES)('%s: the same seed gives the same problem, different seeds vary', (name) => {
    const f = families[name];
    for (const seed of [0, 1, 42, 2 ** 31, 2 ** 40 + 7]) expect(f.generate(seed)).toEqual(f.generate(seed));
    const prompts = new Set(Array.from({ length: 200 }, (_, i) => f.generate(i).prompt));
    expect(prompts.size).toBeGreaterThan(150);
  });

  it.each(FAMILY_NAMES)('%s: problems are well formed and only use the tokenizer alphabet', (name) => {
    const alphabet = new Set(ALPHABET);
    for (let seed = 0; seed < 3000; seed++) {
      const p = families[name].generate(seed);
      const ok = p.family === name && p.id === `${name}-${seed}` && /^Q: .+=\?\nA:$/.test(p.prompt) && p.solution.endsWith(` #### ${p.answer}`);
      if (!ok) throw new Error(`malformed problem: ${JSON.stringify(p)}`);
      const foreign = Array.from(p.prompt + p.solution).filter((ch) => !alphabet.has(ch));
      if (foreign.length > 0) throw new Error(`${p.id} emits characters outside ALPHABET: ${JSON.stringify(foreign)}`);
    }
  });

  it('arith: worked answers are 20-60 characters and the steps compute the answer', () => {
    const lengths: number[] = [];
    for (let seed = 0; seed < 2000; seed++) {
      const p = arith.generate(seed);
      lengths.push(p.solution.length);
      const m = /^Q: (\d+)([+*-])(\d+)=\?\nA:$/.exec(p.prompt)!;
      const [a, b] = [Number(m[1]), Number(m[3])];
      const expected = m[2] === '+' ? a + b : m[2] === '-' ? a - b : a * b;
      expect(p.answer).toBe(String(expected));
      expect(expected).toBeGreaterThanOrEqual(0);
    }
    expect(Math.min(...lengths)).toBeGreaterThanOrEqual(20);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(60);
  });

  it('arith: known worked examples', () => {
    expect(arithSolution(347, '+', 589).solution).toBe(' 7+9+0=16, 4+8+1=13, 3+5+1=9 #### 936');
    expect(arithSolution(347, '-', 189).solution).toBe(' 17-9-0=8, 14-8-1=5, 3-1-1=1 #### 158');
    expect(arithSolution(347, '*', 6).solution).toBe(' 7*6+0=42, 4*6+4=28, 3*6+2=20 #### 2082');
    expect(arithSolution(100, '-', 99).answer).toBe('1');
    expect(() => arithSolution(5, '-', 9)).toThrow(/a >= b/);
    expect(() => arithSolution(5, '*', 12)).toThrow(/single-digit/);
    expect(() => arithSolution(-1, '+', 2)).toThrow(RangeError);
  });

  it('string: known worked examples', () => {
    expect(applyStringOp('reverse', 'hello').solution).toBe(' o l l e h #### olleh');
    expect(applyStringOp('sort', 'hello').answer).toBe('ehllo');
    expect(applyStringOp('dedupe', 'hello').answer).toBe('helo');
    expect(applyStringOp('upper', 'hello').answer).toBe('HELLO');
    expect(applyStringOp('count', 'hello', 'l').solution).toBe(' h0 e0 l1 l2 o2 #### 2');
    expect(applyStringOp('count', 'abc', 'z').answer).toBe('0');
    expect(() => applyStringOp('count', 'abc')).toThrow(/one lowercase letter/);
    expect(() => applyStringOp('reverse', 'Hello')).toThrow(/lowercase/);
  });

  it('rejects bad seeds', () => {
    expect(() => arith.generate(1.5)).toThrow(RangeError);
    expect(() => string.generate(Number.NaN)).toThrow(RangeError);
  });
});

describe('extractors and verifiers', () => {
  const sample = (name: string, n = 300): Problem[] => Array.from({ length: n }, (_, i) => families[name].generate(1000 + i));

  it.each(FAMILY_NAMES)('%s: accepts its own solution, with or without EOS and trailing junk after EOS', (name) => {
    for (const p of sample(name)) {
      expect(verifyResponse(p, p.solution)).toEqual({ correct: true, extracted: p.answer });
      expect(families[name].verify(p, `${p.solution}${EOS_TOKEN}#### 12345 junk`).correct).toBe(true);
      expect(families[name].verify(p, `${p.solution}\nQ: something else #### 1`).correct).toBe(true);
    }
  });

  it.each(FAMILY_NAMES)('%s: rejects fuzzed answers', (name) => {
    const rng = new Rng(7);
    let rejected = 0;
    for (const p of sample(name)) {
      const cut = p.solution.lastIndexOf('#### ') + 5;
      const chars = p.solution.slice(cut).split('');
      const i = rng.int(0, chars.length - 1);
      const pool = /\d/.test(chars[i]) ? '0123456789' : 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
      let c = chars[i];
      while (c === chars[i]) c = pool[rng.int(0, pool.length - 1)];
      chars[i] = c;
      const corrupted = p.solution.slice(0, cut) + chars.join('');
      const v = families[name].verify(p, corrupted);
      // A changed digit can only keep the value when it is a leading zero; the generators never emit one at i>0.
      if (!v.correct) rejected++;
      expect(v.extracted).not.toBeNull();
      // dropping the last character or appending one also fails
      expect(families[name].verify(p, p.solution.slice(0, -1)).correct).toBe(false);
      expect(families[name].verify(p, `${p.solution}7`).correct).toBe(false);
    }
    expect(rejected).toBe(300);
  });

  it.each(FAMILY_NAMES)('%s: extractor returns null on junk', (name) => {
    const f = getFamily(name);
    for (const junk of ['', '   ', 'hello', '####', '#### ', '####\n42', '12 34', `${EOS_TOKEN}#### 5`, '#### 1 2', '#### ???']) {
      expect(f.extract(junk)).toBeNull();
    }
    expect(f.extract(undefined as unknown as string)).toBeNull();
  });

  it('arith: canonicalises the extracted number', () => {
    expect(arith.extract(' steps #### 0042')).toBe('42');
    expect(arith.extract('#### -0')).toBe('0');
    expect(arith.extract('#### 12a')).toBeNull();
  });

  it('string: answers are letters, or a count', () => {
    expect(string.extract('#### olleh')).toBe('olleh');
    expect(string.extract('#### 03')).toBe('3');
    expect(string.extract('#### ab-c')).toBeNull();
  });
});

describe('problems() and splits', () => {
  it.each(FAMILY_NAMES)('%s: train and test are disjoint by content and deterministic', (name) => {
    const train = problems(name, { split: 'train', seed: 3, n: 3000 });
    const test = problems(name, { split: 'test', seed: 0, n: 300 });
    expect(train).toHaveLength(3000);
    expect(test).toHaveLength(300);
    const trainPrompts = new Set(train.map((p) => p.prompt));
    for (const p of test) {
      expect(trainPrompts.has(p.prompt)).toBe(false);
      expect(splitOf(p)).toBe('test');
    }
    for (const p of train) expect(splitOf(p)).toBe('train');
    expect(problems(name, { split: 'test', seed: 0, n: 300 })).toEqual(test);
    // about one in ten problems is a test problem
    const all = Array.from({ length: 5000 }, (_, i) => families[name].generate(i));
    const share = all.filter((p) => splitOf(p) === 'test').length / all.length;
    expect(share).toBeGreaterThan(0.07);
    expect(share).toBeLessThan(0.13);
  });

  it('different stream seeds give different lists; unique drops repeated prompts', () => {
    const a = problems('arith', { split: 'train', seed: 1, n: 50 });
    const b = problems('arith', { split: 'train', seed: 2, n: 50 });
    expect(a.map((p) => p.id)).not.toEqual(b.map((p) => p.id));
    const u = problems('arith', { split: 'test', seed: 0, n: 400, unique: true });
    expect(new Set(u.map((p) => p.prompt)).size).toBe(400);
  });

  it('rejects bad options with clear errors', () => {
    expect(() => problems('nope', { split: 'train', n: 1 })).toThrow(/unknown task family 'nope'/);
    expect(() => problems('arith', { split: 'dev' as never, n: 1 })).toThrow(/split/);
    expect(() => problems('arith', { split: 'train', n: -1 })).toThrow(/n must be/);
    expect(() => problems('arith', { split: 'train', n: 1, seed: -2 })).toThrow(/seed/);
    expect(() => getFamily('constructor')).toThrow(/unknown task family/);
  });
});

describe('tokenizer', () => {
  const tokenizer = new Tokenizer(JSON.parse(buildTokenizerJson()), {});

  it('has the special tokens at fixed ids and one id per character', () => {
    expect(tokenizer.encode(`${'<|pad|>'}${EOS_TOKEN}${MASK_TOKEN}`).ids).toEqual([PAD_ID, EOS_ID, MASK_ID]);
    const ids = tokenizer.encode(ALPHABET).ids;
    expect(ids).toHaveLength(ALPHABET.length);
    expect(new Set(ids).size).toBe(ALPHABET.length);
    expect(Math.max(...ids)).toBe(VOCAB_SIZE - 1);
    expect(ids).toEqual(encodeChars(ALPHABET));
    expect(() => encodeChars('é')).toThrow(/not in the task alphabet/);
    expect(delimiterTokenIds()).toEqual(encodeChars('\n,.;:?'));
  });

  it.each(FAMILY_NAMES)('%s: prompts and solutions round-trip exactly, one token per character', (name) => {
    for (const p of problems(name, { split: 'train', seed: 9, n: 300 })) {
      const text = p.prompt + p.solution;
      const enc = tokenizer.encode(`${text}${EOS_TOKEN}`);
      expect(enc.ids).toEqual([...encodeChars(text), EOS_ID]);
      expect(tokenizer.decode(enc.ids, { skip_special_tokens: true })).toBe(text);
      expect(tokenizer.decode(enc.ids)).toBe(`${text}${EOS_TOKEN}`);
    }
  });
});
