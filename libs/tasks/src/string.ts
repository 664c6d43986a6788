import { ANSWER_MARKER, rawFinalAnswer, verdict } from './answer';
import { ProblemRng as Rng } from '@dllm/prng';
import type { Problem, TaskFamily } from './types';

// String manipulation (the MBPP stand-in): a small "program" applied to a short lowercase word, with the
// result spelled out one character at a time before the final answer. Grammar in docs/TASKS.md.
//
//   Q: reverse(hello)=?\nA:   ->   " o l l e h #### olleh"
//   Q: sort(hello)=?\nA:      ->   " e h l l o #### ehllo"
//   Q: dedupe(hello)=?\nA:    ->   " h e l o #### helo"
//   Q: upper(hello)=?\nA:     ->   " H E L L O #### HELLO"
//   Q: count(hello,l)=?\nA:   ->   " h0 e0 l1 l2 o2 #### 2"     (running count after each character)

export type StringOp = 'reverse' | 'sort' | 'dedupe' | 'upper' | 'count';
export const STRING_OPS: readonly StringOp[] = ['reverse', 'sort', 'dedupe', 'upper', 'count'];
const LOWER = 'abcdefghijklmnopqrstuvwxyz';

export function applyStringOp(op: StringOp, word: string, letter?: string): { solution: string; answer: string } {
  if (!/^[a-z]{1,32}$/.test(word)) throw new RangeError(`word must be 1-32 lowercase letters, got '${word}'`);
  const chars = word.split('');
  let out: string[];
  switch (op) {
    case 'reverse':
      out = [...chars].reverse();
      break;
    case 'sort':
      out = [...chars].sort();
      break;
    case 'dedupe':
      out = chars.filter((c, i) => chars.indexOf(c) === i);
      break;
    case 'upper':
      out = chars.map((c) => c.toUpperCase());
      break;
    case 'count': {
      if (letter === undefined || !/^[a-z]$/.test(letter)) throw new RangeError(`count needs one lowercase letter, got '${letter}'`);
      let n = 0;
      const steps = chars.map((c) => {
        if (c === letter) n++;
        return `${c}${n}`;
      });
      return { solution: ` ${steps.join(' ')} ${ANSWER_MARKER} ${n}`, answer: String(n) };
    }
    default:
      throw new RangeError(`unknown string operation '${String(op)}'`);
  }
  const answer = out.join('');
  return { solution: ` ${out.join(' ')} ${ANSWER_MARKER} ${answer}`, answer };
}

export function stringPrompt(op: StringOp, word: string, letter?: string): string {
  return op === 'count' ? `Q: count(${word},${letter})=?\nA:` : `Q: ${op}(${word})=?\nA:`;
}

export const string: TaskFamily = {
  name: 'string',
  description:
    'String manipulation on a 3-8 letter lowercase word: reverse, sort, dedupe, upper, count(word,letter); the result is spelled out, then the answer after "####".',
  generate(seed: number): Problem {
    const rng = new Rng(seed);
    const op = rng.pick(STRING_OPS);
    const length = rng.int(3, 8);
    // dedupe and count draw from a small pool of letters so that repeats are common
    const pool = op === 'dedupe' || op === 'count' ? Array.from({ length: rng.int(2, 5) }, () => rng.pick(LOWER.split(''))).join('') : LOWER;
    const word = Array.from({ length }, () => pool[rng.int(0, pool.length - 1)]).join('');
    const letter = op === 'count' ? (rng.float() < 0.85 ? word[rng.int(0, word.length - 1)] : rng.pick(LOWER.split(''))) : undefined;
    const { solution, answer } = applyStringOp(op, word, letter);
    return { id: `string-${seed}`, family: 'string', prompt: stringPrompt(op, word, letter), solution, answer };
  },
  extract(response: string): string | null {
    const raw = rawFinalAnswer(response);
    if (raw === null) return null;
    if (/^\d{1,3}$/.test(raw)) return String(Number(raw));
    return /^[A-Za-z]{1,32}$/.test(raw) ? raw : null;
  },
  verify(problem, response) {
    return verdict(problem, this.extract(response));
  },
};
