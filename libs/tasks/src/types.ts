/** One verifiable problem. `prompt` + `solution` + EOS is exactly the text a model is trained on. */
export interface Problem {
  /** `<family>-<seed>`: unique per (family, seed); the same seed always gives the same problem. */
  id: string;
  family: string;
  /** Plain text ending in `\nA:`, e.g. `Q: 347+589=?\nA:`. */
  prompt: string;
  /** The full worked answer the model should produce after the prompt, without EOS. Ends in `#### <answer>`. */
  solution: string;
  /** The final answer in canonical form (what `extract` returns for a correct response). */
  answer: string;
}

export interface Verdict {
  correct: boolean;
  /** The canonical final answer found in the response, or null when there is none. */
  extracted: string | null;
}

export interface TaskFamily {
  readonly name: string;
  readonly description: string;
  /** Deterministic: the same seed gives the same problem on every machine. Seed: a non-negative safe integer. */
  generate(seed: number): Problem;
  /** The canonical final answer in a model response, or null when the response has none or it is malformed. */
  extract(response: string): string | null;
  /** Exact match of the extracted final answer against `problem.answer`. */
  verify(problem: Problem, response: string): Verdict;
}

export type Split = 'train' | 'test';
