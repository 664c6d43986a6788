export type { Problem, TaskFamily, Verdict, Split } from './types';
export { ANSWER_MARKER, rawFinalAnswer } from './answer';
export { arith, arithSolution, arithPrompt, type ArithOp } from './arith';
export { string, applyStringOp, stringPrompt, STRING_OPS, type StringOp } from './string';
export { families, familyNames, getFamily, splitOf, problems, iterateProblems, verifyResponse, STREAM_SPAN, type ProblemsOptions } from './suite';
export {
  ALPHABET,
  VOCAB_SIZE,
  PAD_TOKEN,
  EOS_TOKEN,
  MASK_TOKEN,
  BOS_TOKEN,
  SPECIAL_TOKENS,
  PAD_ID,
  EOS_ID,
  MASK_ID,
  BOS_ID,
  DELIMITER_CHARS,
  vocabulary,
  delimiterTokenIds,
  tokenizerSpec,
  buildTokenizerJson,
  encodeChars,
} from './tokenizer';
export { ProblemRng as Rng, fnv1a } from '@dllm/prng';
