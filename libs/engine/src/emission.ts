// Text emission: the completion's text, stop strings, and the block events a listener streams
// (docs/ENGINE.md "Use"). The texts of all events concatenate to exactly the final text; a trailing
// piece that could still grow into a stop string is held back until it cannot; neither a stop string
// nor anything after it is ever emitted. The decoder (sequence.ts) hands in the contiguous generated
// tokens; this turns them into text.
import type { TextCodec } from './model-dir';

export interface BlockEvent {
  index: number;
  /** Generated tokens committed in this block (in order). */
  tokenIds: number[];
  /** Text added by this block. */
  text: string;
  completionTokens: number;
  forwards: number;
}

/** Where a stop string cut the completion. */
export interface StopCut {
  /** Tokens kept: the shortest prefix whose text contains the stop string (the token completing it is kept). */
  tokens: number;
  /** Text before the stop string. */
  text: string;
}

/** Turns one sequence's generated tokens into text and block events, cutting at the first stop string. */
export class TextEmitter {
  private cut: StopCut | null = null;
  private emittedText = '';
  private emittedTokens = 0;
  private events = 0;

  /**
   * @param hidden token ids never shown as text (the stop tokens: EOS and `stopTokenIds`)
   * @param stop stop strings (`options.stop`)
   * @param onBlock the listener; without one nothing is emitted (stop strings still cut the text)
   */
  constructor(
    private readonly codec: TextCodec,
    private readonly hidden: ReadonlySet<number>,
    private readonly stop: readonly string[],
    private readonly onBlock?: (e: BlockEvent) => void,
  ) {}

  /** The stop-string cut, once one was found. */
  get stopCut(): StopCut | null {
    return this.cut;
  }

  /** Whether block events are wanted at all. */
  get listening(): boolean {
    return this.onBlock !== undefined;
  }

  /** Whether a stop string may still appear (there are some and none was found yet). */
  get watching(): boolean {
    return this.stop.length > 0 && !this.cut;
  }

  /** Text of tokens, without the stop tokens (the codec skips special tokens). */
  textOf(toks: readonly number[]): string {
    return this.codec.decode(toks.filter((t) => !this.hidden.has(t)));
  }

  /**
   * Looks for the earliest stop string in the text of `toks` (the contiguous generated tokens). On a
   * find it records the cut (`stopCut`) and returns true; afterwards it is never searched again.
   */
  findStop(toks: readonly number[]): boolean {
    if (!this.watching) return false;
    const text = this.textOf(toks);
    let at = -1;
    for (const s of this.stop) {
      const i = text.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at < 0) return false;
    const stopStr = this.stop.find((s) => text.indexOf(s) === at)!;
    // Shortest token prefix whose text contains the stop string.
    let n = toks.length;
    for (let k = 1; k <= toks.length; k++) {
      if (this.textOf(toks.slice(0, k)).includes(stopStr)) {
        n = k;
        break;
      }
    }
    this.cut = { tokens: n, text: text.slice(0, at) };
    return true;
  }

  /** The completion for `toks`: cut at the stop string when one was found. */
  final(toks: number[]): { tokens: number[]; text: string } {
    if (this.cut) return { tokens: toks.slice(0, this.cut.tokens), text: this.cut.text };
    return { tokens: toks, text: this.textOf(toks) };
  }

  /**
   * Emits a block event for the contiguous tokens `toks` (everything generated so far that a block
   * has closed): the tokens and the visible text added since the last event. `final` = decoding is
   * over (nothing is held back any more); `forwards` = the sequence's decoding forwards so far.
   */
  emitBlock(toks: readonly number[], final: boolean, forwards: number): void {
    if (!this.onBlock) return;
    const shown = this.cut ? toks.slice(0, this.cut.tokens) : toks;
    this.emit(shown, this.visibleText(shown, final), forwards);
  }

  /** At the end: releases text held back as a possible stop-string prefix that never completed. */
  releaseHeld(toks: readonly number[], text: string, forwards: number): void {
    if (this.onBlock && this.emittedText.length < text.length) this.emit(toks, text, forwards);
  }

  /**
   * The text a listener may see so far: never a stop string or what follows it, and while decoding
   * goes on, not the tail that could still grow into a stop string (it is released once it cannot).
   */
  private visibleText(toks: readonly number[], final: boolean): string {
    if (this.cut) return this.cut.text;
    const text = this.textOf(toks);
    if (final || this.stop.length === 0) return text;
    let hold = 0;
    for (const s of this.stop) {
      for (let k = Math.min(s.length - 1, text.length); k > hold; k--) {
        if (text.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return text.slice(0, text.length - hold);
  }

  private emit(toks: readonly number[], visible: string, forwards: number): void {
    const e: BlockEvent = {
      index: this.events++,
      tokenIds: toks.slice(this.emittedTokens),
      text: visible.slice(this.emittedText.length),
      completionTokens: toks.length,
      forwards,
    };
    this.emittedTokens = toks.length;
    this.emittedText = visible;
    try {
      this.onBlock!(e);
    } catch {
      /* a listener's error must not break decoding */
    }
  }
}
