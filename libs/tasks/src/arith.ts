import { ANSWER_MARKER, rawFinalAnswer, verdict } from './answer';
import { ProblemRng as Rng } from '@dllm/prng';
import type { Problem, TaskFamily } from './types';

// Multi-digit arithmetic with written column steps (the GSM8K stand-in: answers of ~25-55 characters,
// so block decoding has several tokens to commit in parallel). Grammar in docs/TASKS.md.
//
//   Q: 347+589=?\nA:   ->   " 7+9+0=16, 4+8+1=13, 3+5+1=9 #### 936"
//   Q: 347-189=?\nA:   ->   " 17-9-0=8, 14-8-1=5, 3-1-1=1 #### 158"
//   Q: 347*6=?\nA:     ->   " 7*6+0=42, 4*6+4=28, 3*6+2=20 #### 2082"

export type ArithOp = '+' | '-' | '*';
const OPS: readonly ArithOp[] = ['+', '-', '*'];

function digitsOf(n: number): number[] {
  // least significant first
  return String(n).split('').reverse().map(Number);
}

function randomNumber(rng: Rng, minDigits: number, maxDigits: number): number {
  const d = rng.int(minDigits, maxDigits);
  return rng.int(10 ** (d - 1), 10 ** d - 1);
}

/** The written column steps and final answer for `a op b` (a >= b for '-', b a single digit for '*'). */
export function arithSolution(a: number, op: ArithOp, b: number): { solution: string; answer: string } {
  if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || a < 0 || b < 0) {
    throw new RangeError(`operands must be non-negative integers, got ${a} and ${b}`);
  }
  const da = digitsOf(a);
  const db = digitsOf(b);
  const steps: string[] = [];
  let answer: number;
  if (op === '+') {
    let carry = 0;
    for (let i = 0; i < Math.max(da.length, db.length); i++) {
      const x = da[i] ?? 0;
      const y = db[i] ?? 0;
      const v = x + y + carry;
      steps.push(`${x}+${y}+${carry}=${v}`);
      carry = Math.floor(v / 10);
    }
    answer = a + b;
  } else if (op === '-') {
    if (a < b) throw new RangeError(`subtraction needs a >= b, got ${a}-${b}`);
    let borrow = 0;
    for (let i = 0; i < da.length; i++) {
      const x = da[i];
      const y = db[i] ?? 0;
      const v = x - y - borrow;
      if (v < 0) {
        steps.push(`1${x}-${y}-${borrow}=${v + 10}`);
        borrow = 1;
      } else {
        steps.push(`${x}-${y}-${borrow}=${v}`);
        borrow = 0;
      }
    }
    answer = a - b;
  } else if (op === '*') {
    if (b > 9) throw new RangeError(`multiplication takes a single-digit second operand, got ${b}`);
    let carry = 0;
    for (let i = 0; i < da.length; i++) {
      const v = da[i] * b + carry;
      steps.push(`${da[i]}*${b}+${carry}=${v}`);
      carry = Math.floor(v / 10);
    }
    answer = a * b;
  } else {
    throw new RangeError(`unknown operator '${String(op)}'`);
  }
  return { solution: ` ${steps.join(', ')} ${ANSWER_MARKER} ${answer}`, answer: String(answer) };
}

export function arithPrompt(a: number, op: ArithOp, b: number): string {
  return `Q: ${a}${op}${b}=?\nA:`;
}

export const arith: TaskFamily = {
  name: 'arith',
  description:
    'Multi-digit arithmetic with written column steps: a+b and a-b (2-4 digit operands, a >= b) and a*d (2-3 digits times one digit 2-9). Answer after "####".',
  generate(seed: number): Problem {
    const rng = new Rng(seed);
    const op = rng.pick(OPS);
    let a: number;
    let b: number;
    if (op === '*') {
      a = randomNumber(rng, 2, 3);
      b = rng.int(2, 9);
    } else {
      a = randomNumber(rng, 2, 4);
      b = randomNumber(rng, 2, 4);
      if (op === '-' && a < b) [a, b] = [b, a];
    }
    const { solution, answer } = arithSolution(a, op, b);
    return { id: `arith-${seed}`, family: 'arith', prompt: arithPrompt(a, op, b), solution, answer };
  },
  extract(response: string): string | null {
    const raw = rawFinalAnswer(response);
    if (raw === null || !/^-?\d{1,15}$/.test(raw)) return null;
    return String(Number(raw)); // canonical: no leading zeros, "-0" -> "0"
  },
  verify(problem, response) {
    return verdict(problem, this.extract(response));
  },
};
