import type { Problem, Verdict } from './types';

/** The final-answer marker every solution ends with (GSM8K's convention). */
export const ANSWER_MARKER = '####';

/** Special tokens that may appear literally in decoded text; a response is cut at the first stop token. */
const STOP_STRINGS = ['<|eos|>', '<|pad|>'];

/**
 * The raw text after the first `####` marker, up to the end of that line, trimmed; null if there is no
 * marker or nothing follows it. Text after a stop token is ignored: a model that "keeps talking" after EOS
 * is judged on what it said before.
 */
export function rawFinalAnswer(response: string): string | null {
  if (typeof response !== 'string') return null;
  let text = response;
  for (const stop of STOP_STRINGS) {
    const at = text.indexOf(stop);
    if (at >= 0) text = text.slice(0, at);
  }
  const at = text.indexOf(ANSWER_MARKER);
  if (at < 0) return null;
  const rest = text.slice(at + ANSWER_MARKER.length);
  const line = rest.split('\n', 1)[0].trim();
  return line.length > 0 ? line : null;
}

export function verdict(problem: Problem, extracted: string | null): Verdict {
  return { correct: extracted !== null && extracted === problem.answer, extracted };
}
