// The character-level vocabulary of the bundled models, as a Hugging Face tokenizer.json.
// The Python trainer reads the JSON this module writes (via `dllm-farm tasks tokenizer`), so the
// vocabulary has exactly one source of truth.

/** Special tokens, in id order: ids 0, 1, 2, 3. */
export const PAD_TOKEN = '<|pad|>';
export const EOS_TOKEN = '<|eos|>';
export const MASK_TOKEN = '<|mask|>';
export const BOS_TOKEN = '<|bos|>';
export const SPECIAL_TOKENS = [PAD_TOKEN, EOS_TOKEN, MASK_TOKEN, BOS_TOKEN] as const;
export const PAD_ID = 0;
export const EOS_ID = 1;
export const MASK_ID = 2;
export const BOS_ID = 3;

/**
 * Every character a generator can emit, plus a little spare punctuation for hand-written prompts.
 * Appending characters is backwards compatible; reordering or removing them invalidates trained models.
 */
export const ALPHABET = '\n !"#\'()*+,-./0123456789:;<=>?@[]_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/**
 * Characters after which a block may end naturally (AdaBlock delimiters): newline and punctuation.
 * Not space or '=': they occur inside every worked step, and a block cut there would split a step.
 */
export const DELIMITER_CHARS = ['\n', ',', '.', ';', ':', '?'];

/** token string -> id, specials first. */
export function vocabulary(): Record<string, number> {
  const vocab: Record<string, number> = {};
  SPECIAL_TOKENS.forEach((t, i) => (vocab[t] = i));
  for (const ch of ALPHABET) {
    if (ch in vocab) throw new Error(`duplicate character ${JSON.stringify(ch)} in ALPHABET`);
    vocab[ch] = Object.keys(vocab).length;
  }
  return vocab;
}

export const VOCAB_SIZE = SPECIAL_TOKENS.length + ALPHABET.length;

/** Token ids of the delimiter characters (for the model manifest's delimiter_token_ids). */
export function delimiterTokenIds(): number[] {
  const vocab = vocabulary();
  return DELIMITER_CHARS.map((c) => vocab[c]);
}

/** The tokenizer as a plain object in Hugging Face `tokenizer.json` layout (BPE with no merges = characters). */
export function tokenizerSpec(): Record<string, unknown> {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Fuse' },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: vocabulary(),
      merges: [],
    },
  };
}

/** The tokenizer.json text (pretty-printed, trailing newline). */
export function buildTokenizerJson(): string {
  return `${JSON.stringify(tokenizerSpec(), null, 2)}\n`;
}

/** Encode text made only of ALPHABET characters (no special tokens); throws on anything else. */
export function encodeChars(text: string): number[] {
  const vocab = vocabulary();
  return Array.from(text, (ch) => {
    const id = ALPHABET.includes(ch) ? vocab[ch] : undefined;
    if (id === undefined) throw new RangeError(`character ${JSON.stringify(ch)} is not in the task alphabet`);
    return id;
  });
}
