// Text <-> token ids with a Hugging Face tokenizer.json, offline (@huggingface/tokenizers).
import * as fs from 'node:fs';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

export class Tokenizer {
  private readonly tok: HfTokenizer;
  /** one past the largest id in the vocabulary and the added tokens. */
  readonly vocabSize: number;
  readonly specialIds: ReadonlySet<number>;

  constructor(
    readonly json: Record<string, unknown>,
    config: Record<string, unknown> = {},
  ) {
    if (!json || typeof json !== 'object' || !json.model) throw new Error('tokenizer.json: not a Hugging Face tokenizer (no "model" section)');
    try {
      this.tok = new HfTokenizer(json, config);
    } catch (e) {
      throw new Error(`tokenizer.json: cannot load (${(e as Error).message})`);
    }
    let max = -1;
    for (const id of this.tok.get_vocab(true).values()) if (id > max) max = id;
    const specials = new Set<number>();
    for (const t of (json.added_tokens as { id: number; special?: boolean }[] | undefined) ?? []) {
      if (t.id > max) max = t.id;
      if (t.special) specials.add(t.id);
    }
    this.vocabSize = max + 1;
    this.specialIds = specials;
  }

  static fromFile(file: string): Tokenizer {
    if (!fs.existsSync(file)) throw new Error(`tokenizer file not found: ${file}`);
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
    }
    return new Tokenizer(json);
  }

  /** Token ids of `text`, without special tokens added (no BOS/EOS). */
  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of `ids`; special tokens (mask, eos, pad...) are skipped. */
  decode(ids: readonly number[]): string {
    // @huggingface/tokenizers throws on an empty list; a job cancelled before its first token has none.
    if (ids.length === 0) return '';
    return this.tok.decode([...ids], { skip_special_tokens: true });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /** The first of `names` present in the vocabulary. */
  findToken(names: readonly string[]): number | undefined {
    for (const n of names) {
      const id = this.tokenToId(n);
      if (id !== undefined) return id;
    }
    return undefined;
  }
}

/**
 * A character-level tokenizer.json (BPE without merges): `specials` first (ids 0..), then one
 * token per character of `chars`. Used for tiny test models.
 */
export function charTokenizerJson(chars: string, specials: readonly string[] = ['<|pad|>', '<|eos|>', '<|mask|>', '<|bos|>']): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  specials.forEach((s, i) => (vocab[s] = i));
  let id = specials.length;
  for (const c of chars) if (!(c in vocab)) vocab[c] = id++;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, i) => ({ id: i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
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
      vocab,
      merges: [],
    },
  };
}
