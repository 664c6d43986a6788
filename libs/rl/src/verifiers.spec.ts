import { arith, string } from '@dllm/tasks';
import { createVerifierRegistry, extractAnswer, lastNumber, verifiers } from './verifiers';

describe('verifiers', () => {
  it('exact: answer after #### (cut at EOS), whitespace collapsed', () => {
    const v = verifiers.bind('exact');
    expect(v.verify({ response: 'work\n#### 42\n', answer: '42' })).toEqual({ correct: true, extracted: '42', truncated: false });
    expect(v.verify({ response: 'work\n#### 41', answer: '42' }).correct).toBe(false);
    expect(v.verify({ response: 'no marker 42', answer: '42' })).toEqual({ correct: false, extracted: null, truncated: false });
    expect(v.verify({ response: '#### 7<|eos|>#### 42', answer: '42' }).extracted).toBe('7');
  });
  it('a truncated response is wrong even when the answer matches', () => {
    expect(verifiers.bind('exact').verify({ response: '#### 42', answer: '42', truncated: true })).toEqual({
      correct: false,
      extracted: '42',
      truncated: true,
    });
  });
  it('numeric: tolerance, relative tolerance, commas, last number fallback', () => {
    const v = verifiers.bind({ name: 'numeric', params: { tolerance: 0.01 } });
    expect(v.verify({ response: '#### 3.141', answer: '3.14' }).correct).toBe(true);
    expect(v.verify({ response: '#### 3.2', answer: '3.14' }).correct).toBe(false);
    expect(v.verify({ response: 'so it is 1,234 apples', answer: '1234' })).toMatchObject({ correct: true, extracted: '1234' });
    expect(v.verify({ response: '#### 12 apples', answer: '12' })).toMatchObject({ correct: true, extracted: '12' });
    const rel = verifiers.bind({ name: 'numeric', params: { tolerance: 0, relTolerance: 0.1 } });
    expect(rel.verify({ response: '#### 105', answer: '100' }).correct).toBe(true);
    expect(rel.verify({ response: '#### 111', answer: '100' }).correct).toBe(false);
    expect(lastNumber('a -2.5e3 b 7')).toBe('7');
  });
  it('regex: pattern from params or the answer; capture group is the extracted answer', () => {
    const v = verifiers.bind({ name: 'regex', params: { pattern: 'answer: (\\w+)', flags: 'i' } });
    expect(v.needsAnswer).toBe(false);
    expect(v.verify({ response: 'ANSWER: cat' })).toMatchObject({ correct: true, extracted: 'cat' });
    expect(v.verify({ response: 'dog' }).correct).toBe(false);
    const fromAnswer = verifiers.bind({ name: 'regex', params: { target: 'extracted', fullMatch: true } });
    expect(fromAnswer.verify({ response: '#### abc', answer: 'a.c' }).correct).toBe(true);
    expect(fromAnswer.verify({ response: '#### abcd', answer: 'a.c' }).correct).toBe(false);
  });
  it('exact-string: the whole response', () => {
    const v = verifiers.bind('exact-string');
    expect(v.verify({ response: ' hello <|eos|>junk', answer: 'hello' }).correct).toBe(true);
    expect(v.verify({ response: 'Hello', answer: 'hello' }).correct).toBe(false);
    expect(verifiers.bind({ name: 'exact-string', params: { caseSensitive: false } }).verify({ response: 'Hello', answer: 'hello' }).correct).toBe(true);
  });
  it('task:<family> uses the task suite verifier', () => {
    const p = arith.generate(3);
    const v = verifiers.bind('task:arith');
    expect(v.verify({ response: p.solution, answer: p.answer, prompt: p.prompt }).correct).toBe(true);
    expect(v.verify({ response: p.solution, answer: p.answer, prompt: p.prompt, truncated: true }).correct).toBe(false);
    const s = string.generate(5);
    expect(verifiers.bind('task:string').verify({ response: s.solution, answer: s.answer, prompt: s.prompt }).correct).toBe(true);
    expect(verifiers.bind('task:string').verify({ response: '#### nope-not-it', answer: s.answer, prompt: s.prompt }).correct).toBe(false);
  });
  it('clear errors: unknown verifier, bad params, missing answer, invalid regex', () => {
    expect(() => verifiers.bind('bogus')).toThrow(/unknown verifier 'bogus' \(known: exact, numeric, regex, exact-string, task:arith/);
    expect(() => verifiers.bind('task:nope')).toThrow(/unknown verifier/);
    expect(() => verifiers.bind({ name: 'numeric', params: { tolerance: -1 } })).toThrow(/tolerance/);
    expect(() => verifiers.bind({ name: 'exact', params: { typo: 1 } })).toThrow(/invalid params/);
    expect(() => verifiers.bind({ name: 'regex', params: { pattern: '(' } })).toThrow(/invalid regular expression/);
    expect(() => verifiers.bind('exact').verify({ response: '#### 1' })).toThrow(/needs a reference answer/);
  });
  it('is pluggable by name', () => {
    const reg = createVerifierRegistry().register({
      name: 'len',
      description: 'response has at least n characters',
      params: require('zod').z.strictObject({ n: require('zod').z.number().int() }),
      needsAnswer: () => false,
      judge: ({ response }: { response: string }, p: { n: number }) => ({ correct: response.length >= p.n, extracted: String(response.length) }),
    });
    expect(reg.bind({ name: 'len', params: { n: 3 } }).verify({ response: 'abcd' }).correct).toBe(true);
    expect(() => reg.register({ ...(reg as any).verifiers.get('len') })).toThrow(/already registered/);
    expect(() => reg.register({ name: 'Bad Name' } as never)).toThrow(/lower-case/);
    expect(extractAnswer('x\n#### 5', 'marker-or-last-number')).toBe('5');
  });
  it('regex runs on RE2: a catastrophic-backtracking pattern on a long input is linear, not a frozen loop', () => {
    const v = verifiers.bind({ name: 'regex', params: { pattern: '^(.*)*Q$' } });
    const t = Date.now();
    expect(v.verify({ response: 'a'.repeat(100_000) + 'b' }).correct).toBe(false);
    expect(v.verify({ response: 'x'.repeat(50_000) + 'Q' }).correct).toBe(true);
    expect(Date.now() - t).toBeLessThan(2000);
    // capture 1 is the extracted answer; flags map to RE2's
    expect(verifiers.bind({ name: 'regex', params: { pattern: 'answer: (\\d+)', flags: 'i' } }).verify({ response: 'ANSWER: 42' })).toMatchObject({
      correct: true,
      extracted: '42',
    });
  });
  it('answers and patterns that can only match vacuously are reported at bind/check time', () => {
    const re = verifiers.bind('regex');
    expect(re.checkAnswer('')).toMatch(/empty/);
    expect(re.checkAnswer('a*')).toMatch(/matches the empty string/);
    expect(re.checkAnswer('(a)\\1')).toMatch(/RE2/);
    expect(re.checkAnswer('^4$')).toBeNull();
    expect(() => verifiers.bind({ name: 'regex', params: { pattern: '^' } })).toThrow(/empty string/);
    expect(verifiers.bind('exact').checkAnswer('  ')).toMatch(/empty/);
    expect(verifiers.bind('numeric').checkAnswer('abc')).toMatch(/not a number/);
    expect(verifiers.bind('exact').checkAnswer('4')).toBeNull();
  });
});
