// One generation request as a decoding state machine. The scheduler asks it for its next forward
// (nextForward), runs that forward batched with others, and hands the row back (onOutput).
// The decoding loop lives here, shared by all policies; a policy only says which candidates to commit.
// What the loop delegates, one concern per module:
//   kv/sequence-pages.ts  the page table: prefix walk, page publication, K/V writes, the reservation
//   kv/kept-window.ts     the sub-block cache's kept window K/V
//   trajectory.ts         per-token records and block spans (the RL trajectory)
//   emission.ts           text, stop strings, block events
//
// Block mode (fast-dllm-v2, entropy, adablock), per block:
//   window forwards over the block (no cache write) -> draws for the masked slots of the active
//   sub-block (token shift: slot j is predicted by output j-1) -> policy.step commits >= 1 of them;
//   when the block has no masked target left: one commit forward over the finished block writes its
//   KV into the pages and its last output draws slot 0 of the next block.
// Causal mode (ar): one forward per token with KV cache.
import type { KvPool, KvPage } from './kv/pool';
import { SequencePages } from './kv/sequence-pages';
import { KeptWindow } from './kv/kept-window';
import type { ResolvedOptions } from './options';
import type { Candidate, DecodePolicy } from './policies/types';
import { Sfc32 as Rng } from '@dllm/prng';
import { drawToken, greedyDraw, type Draw } from './sampling';
import type { ForwardSpec, ModelHandle, RowOutput } from './forward';
import { TrajectoryRecorder, type Trajectory } from './trajectory';
import { TextEmitter, type BlockEvent } from './emission';

export interface GenerationResult {
  text: string;
  tokenIds: number[];
  finishReason: 'stop' | 'length' | 'cancelled';
  usage: { promptTokens: number; completionTokens: number };
  stats: { forwards: number; tpf: number; wallMs: number; prefillTokens: number; prefixCacheHitTokens: number };
  model: { name: string; version: string };
  trajectory?: Trajectory;
}

interface Window {
  start: number;
  /** Block length (after planning). */
  len: number;
  planned: boolean;
  /** Window length of the planning forward (adablock's lookahead). */
  planLen: number;
  index: number;
  /** No step has run yet in this block (cancellation point). */
  fresh: boolean;
}

let nextSeqId = 1;

export class Sequence {
  readonly id = nextSeqId++;
  readonly all: number[];
  private readonly promptLen: number;
  private readonly cap: number;
  /** Positions the model supports (max_position_embeddings); no window reaches past it. */
  private readonly maxPos: number;
  private readonly rng: Rng | null;
  private readonly stopIds: Set<number>;
  private readonly pages: SequencePages;
  private readonly traj = new TrajectoryRecorder();
  private readonly emitter: TextEmitter;
  private phase: 'init' | 'block' | 'ar' | 'done' = 'init';
  private prefillEnd = 0;
  private win: Window | null = null;
  private firstStop = Infinity;
  /** Sub-block cache: the K/V of the current block's window slots (allocated at the first keep). */
  private kept: KeptWindow | null = null;
  private walkDone = false;
  forwards = 0;
  prefillForwards = 0;
  private readonly t0 = Date.now();
  result: GenerationResult | null = null;

  constructor(
    readonly handle: ModelHandle,
    readonly opts: ResolvedOptions,
    readonly policy: DecodePolicy,
    promptIds: readonly number[],
    pool: KvPool,
    readonly hooks: { signal?: AbortSignal; onBlock?: (e: BlockEvent) => void },
    private readonly onDone: (s: Sequence) => void,
  ) {
    if (promptIds.length === 0) throw new RangeError('the prompt is empty: at least one prompt token is needed');
    for (const t of promptIds) {
      if (!Number.isInteger(t) || t < 0 || t >= handle.vocabSize)
        throw new RangeError(`prompt token id ${t} is outside the vocabulary (size ${handle.vocabSize})`);
    }
    this.all = [...promptIds];
    this.promptLen = promptIds.length;
    this.maxPos = handle.maxPositions;
    if (this.promptLen >= this.maxPos)
      throw new RangeError(`the prompt has ${this.promptLen} tokens; the model handles at most ${this.maxPos} positions (max_position_embeddings)`);
    // The model's position limit caps generation like maxNewTokens does (finishReason 'length').
    this.cap = Math.min(this.promptLen + opts.maxNewTokens, this.maxPos);
    this.rng = opts.temperature > 0 ? new Rng(opts.seed) : null;
    this.stopIds = new Set([handle.eosId, ...opts.stopTokenIds]);
    // Causal pages are always sharable; block-causal ones when blocks tile the page (committed blocks
    // of generated text too, except AdaBlock's, whose limit is set to the prefill end at the start).
    const causal = policy.mode === 'causal';
    const tiled = handle.geometry.pagePositions % opts.blockSize === 0;
    const mode = causal ? 'causal' : `bc${opts.blockSize}`;
    const sharing = causal || tiled ? { namespace: handle.namespace, mode, shareLimit: !causal && policy.planBlock ? 0 : Infinity } : null;
    this.pages = new SequencePages(`sequence ${this.id}`, pool, handle.geometry, this.all, sharing);
    this.emitter = new TextEmitter(handle.codec, this.stopIds, opts.stop, hooks.onBlock);
  }

  // ---------------------------------------------------------------- memory

  /** Worst-case bytes this sequence can allocate: every page of prompt + cap, plus the sub-block cache scratch. */
  worstCaseBytes(): number {
    return Math.ceil(this.cap / this.pages.pageSize) * this.pages.pageBytes + this.scratchFloats() * 4;
  }

  private scratchFloats(): number {
    if (!this.opts.subBlockCache || this.policy.mode !== 'block') return 0;
    return KeptWindow.floats(this.handle.geometry, this.opts.blockSize);
  }

  /** The bytes the scheduler reserved in the pool for this sequence (`worstCaseBytes` at admission). */
  setReservation(bytes: number): void {
    this.pages.setReservation(bytes);
  }

  /** Prompt positions taken from shared pages instead of being computed. */
  get prefixHitTokens(): number {
    return this.pages.prefixHitTokens;
  }

  /** Gather view used by the batch builder: page k and its filled length. */
  pageList(): readonly KvPage[] {
    return this.pages.list();
  }

  // ---------------------------------------------------------------- state machine

  get done(): boolean {
    return this.phase === 'done';
  }

  private get aborted(): boolean {
    return this.hooks.signal?.aborted === true;
  }

  /** Stops a sequence that never got admitted. */
  cancelQueued(): void {
    this.finish('cancelled');
  }

  private targetEnd(): number {
    return Math.min(this.cap, this.firstStop);
  }

  nextForward(): ForwardSpec | null {
    if (this.phase === 'done') return null;
    if (this.phase === 'init') {
      if (this.aborted) return (this.finish('cancelled'), null);
      const bs = this.opts.blockSize;
      if (this.policy.mode === 'causal') {
        if (!this.walkDone) {
          if (!this.pages.walkPrefix(this.promptLen - 1)) return null;
          this.walkDone = true;
        }
        this.phase = 'ar';
        const from = this.pages.committed;
        this.pages.prepare(from, this.promptLen, true);
        return this.spec('ar', from, this.promptLen, null, [this.promptLen - 1 - from], true);
      }
      this.prefillEnd = Math.floor((this.promptLen - 1) / bs) * bs;
      // AdaBlock's decoded blocks depend on its plans: only the prefilled prompt blocks are shared.
      if (this.policy.planBlock && this.pages.sharing) this.pages.sharing.shareLimit = this.prefillEnd;
      if (!this.walkDone) {
        if (!this.pages.walkPrefix(this.prefillEnd)) return null;
        this.walkDone = true;
      }
      this.phase = 'block';
      this.openWindow(this.prefillEnd);
      if (this.pages.committed < this.prefillEnd) {
        const from = this.pages.committed;
        this.pages.prepare(from, this.prefillEnd, true);
        const blockIds = [];
        for (let p = from; p < this.prefillEnd; p++) blockIds.push(Math.floor(p / bs));
        return this.spec('prefill', from, this.prefillEnd, blockIds, [], true);
      }
    }
    if (this.phase === 'ar') {
      if (this.aborted) return (this.finish('cancelled'), null);
      const last = this.all.length - 1;
      this.pages.prepare(last, last + 1, false);
      return this.spec('ar', last, last + 1, null, [0], true);
    }
    // block mode
    const w = this.win!;
    if (w.fresh && this.aborted) return (this.finish('cancelled'), null);
    if (!w.planned && !this.hasTarget(w.start, w.start + w.planLen)) {
      // Nothing left to decode in the lookahead (e.g. the cap is reached): no planning forward needed.
      w.planned = true;
      w.len = Math.max(1, Math.min(w.planLen, this.targetEnd() - w.start));
    }
    if (w.planned && !this.hasTarget(w.start, w.start + w.len)) {
      this.endBlock();
      if (this.targetEnd() <= w.start + w.len) {
        this.finish(this.firstStop < Infinity && this.firstStop < this.cap ? 'stop' : 'length');
        return null;
      }
      this.pages.prepare(w.start, w.start + w.len, false);
      return this.spec('commit', w.start, w.start + w.len, this.sameBlock(w.len), [w.len - 1], true);
    }
    const S = w.planned ? w.len : w.planLen;
    if (this.opts.subBlockCache && w.planned) {
      const [a, b] = this.activeSub();
      const kept = this.kept;
      if (kept && kept.block === w.index) {
        // Every step after the block's first: only [from, b) runs, against the prefix pages and the
        // kept window. from = the slot before the active sub-block (its output draws slot a: token
        // shift), or earlier when a slot committed since its K/V was computed lies before it.
        const from = Math.max(0, Math.min(a - 1, kept.dirtyFrom));
        const s = this.spec('sub', w.start + from, w.start + b, this.sameBlock(b - from), this.drawSlots(a, b, from + 1), true);
        s.pastLen = w.start;
        s.extra = kept.asExtra(w.len, from, b);
        return s;
      }
    }
    const wantKV = this.opts.subBlockCache && w.planned;
    // Planned: only the active sub-block's masked slots are drawn (slot j from output j-1). AdaBlock's
    // planning forward draws its whole lookahead, and the block it plans decides the rest: every row.
    const rows = w.planned ? this.drawSlots(...this.activeSub(), 1) : Array.from({ length: S }, (_, i) => i);
    return this.spec('window', w.start, w.start + S, this.sameBlock(S), rows, wantKV);
  }

  private sameBlock(n: number): number[] {
    return new Array<number>(n).fill(0);
  }

  /** Rows (new-position indices) that draw the masked targets among window slots [a, b): slot j is output j - shift. */
  private drawSlots(a: number, b: number, shift: number): number[] {
    const w = this.win!;
    const rows: number[] = [];
    const end = Math.min(w.start + b, this.targetEnd());
    for (let p = w.start + a; p < end; p++) if (this.isMasked(p)) rows.push(p - w.start - shift);
    return rows;
  }

  private spec(kind: ForwardSpec['kind'], from: number, to: number, blockIds: number[] | null, drawRows: number[], wantKV: boolean): ForwardSpec {
    const ids: number[] = [];
    const positions: number[] = [];
    for (let p = from; p < to; p++) {
      ids.push(p < this.all.length ? this.all[p] : this.handle.maskId);
      positions.push(p);
    }
    return {
      seq: this,
      kind,
      ids,
      positions,
      blockIds,
      pastLen: kind === 'window' || kind === 'commit' ? this.win!.start : from,
      extra: null,
      drawRows,
      wantKV,
    };
  }

  private openWindow(start: number): void {
    const bs = this.opts.blockSize;
    const index = this.win ? this.win.index + 1 : 0;
    while (this.all.length < start) this.all.push(this.handle.maskId);
    if (this.policy.planBlock) {
      // Block-aligned AdaBlock: the planning window never crosses the aligned block boundary the model
      // was trained on, so it is at most blockSize; a block that ends early at a delimiter is followed
      // by one that runs to the same boundary (adaptive blocks split the trained blocks, never span two).
      const alignedEnd = Math.min((Math.floor(start / bs) + 1) * bs, this.maxPos);
      const planLen = alignedEnd - start;
      this.win = { start, len: planLen, planned: alignedEnd <= this.promptLen, planLen, index, fresh: true };
    } else {
      const len = Math.min((Math.floor(start / bs) + 1) * bs, this.maxPos) - start;
      this.win = { start, len, planned: true, planLen: len, index, fresh: true };
    }
    const end = start + Math.max(this.win.len, this.win.planLen);
    while (this.all.length < end) this.all.push(this.handle.maskId);
  }

  private isMasked(pos: number): boolean {
    return pos >= this.promptLen && this.all[pos] === this.handle.maskId;
  }

  private hasTarget(from: number, to: number): boolean {
    const end = Math.min(to, this.targetEnd());
    for (let p = from; p < end; p++) if (this.isMasked(p)) return true;
    return false;
  }

  /** The active sub-block [a, b) in window slots: the first with a masked target. */
  private activeSub(): [number, number] {
    const w = this.win!;
    const sbs = this.opts.subBlockSize;
    for (let a = 0; a < w.len; a += sbs) {
      const b = Math.min(a + sbs, w.len);
      if (this.hasTarget(w.start + a, w.start + b)) return [a, b];
    }
    throw new Error(`sequence ${this.id}: no active sub-block`);
  }

  /**
   * Draws from new position `r` of this row. Greedy: the graph's statistics (no vocabulary-wide row
   * reaches JS); sampling: the fetched logits through `drawToken`.
   */
  private draw(out: RowOutput, spec: ForwardSpec, r: number): Draw {
    const k = spec.drawRows.indexOf(r);
    const d = out.draws;
    if (k < 0 || !d)
      throw new Error(`sequence ${this.id}: position ${r} of a ${spec.kind} forward was not requested for drawing (drawRows ${spec.drawRows.join(',')})`);
    const i = out.row * d.R + k;
    if (this.opts.temperature === 0) return greedyDraw(Number(d.argmax[i]), d.maxProb[i], d.entropy[i]);
    if (!d.logits) throw new Error(`sequence ${this.id}: sampling needs logits, which this forward did not fetch`);
    return drawToken(d.logits, i * d.V, d.V, this.opts, this.rng, [this.handle.maskId]);
  }

  private commitToken(pos: number, d: Draw, step: number): void {
    this.all[pos] = d.token;
    const w = this.win;
    if (this.kept && w && pos >= w.start && pos < w.start + w.len) this.kept.markCommitted(w.index, pos - w.start);
    this.traj.record(pos - this.promptLen, step, d);
    if (this.stopIds.has(d.token) && pos < this.firstStop) this.firstStop = pos;
  }

  onOutput(spec: ForwardSpec, out: RowOutput): void {
    if (this.phase === 'done') return;
    const S = spec.ids.length;
    if (spec.kind === 'prefill') {
      this.prefillForwards++;
      this.pages.write(out, spec.positions);
      return;
    }
    const step = this.forwards++;
    if (spec.kind === 'ar') {
      this.pages.write(out, spec.positions);
      const pos = spec.positions[S - 1] + 1;
      this.all.push(0);
      this.commitToken(pos, this.draw(out, spec, S - 1), step);
      const n = pos + 1 - this.promptLen;
      if (n % this.opts.blockSize === 0) this.emitBlock(this.promptLen + n - this.opts.blockSize, pos + 1);
      this.checkStopStrings();
      if (this.done) return;
      if (this.firstStop < Infinity) return void this.finish('stop');
      if (pos + 1 >= this.cap) return void this.finish('length');
      return;
    }
    const w = this.win!;
    if (spec.kind === 'commit') {
      this.pages.write(out, spec.positions);
      const pos = w.start + w.len;
      this.openWindow(pos);
      this.commitToken(pos, this.draw(out, spec, S - 1), step);
      this.checkStopStrings();
      if (this.done) return;
      if (this.firstStop === pos) {
        this.endBlock(pos + 1);
        return void this.finish('stop');
      }
      return;
    }
    // window or sub-block step
    w.fresh = false;
    const rowOf = (slot: number): number => (spec.kind === 'sub' ? slot - 1 - (spec.positions[0] - w.start) : slot - 1);
    const drawn = new Map<number, Candidate>();
    const drawSlot = (slot: number): Candidate => {
      let c = drawn.get(slot);
      if (!c) {
        const r = rowOf(slot);
        if (r < 0 || r >= S) throw new Error(`sequence ${this.id}: slot ${slot} has no logit row in this forward`);
        c = { slot, ...this.draw(out, spec, r) };
        drawn.set(slot, c);
      }
      return c;
    };
    if (!w.planned) {
      const firstTarget = Math.max(0, this.promptLen - w.start);
      const remaining = this.targetEnd() - (w.start + firstTarget);
      const look = Math.max(1, Math.min(Math.ceil(this.opts.maxNewTokens / 4), remaining));
      const lookahead: Candidate[] = [];
      for (let s = firstTarget; s < Math.min(firstTarget + look, w.planLen); s++) if (this.isMasked(w.start + s)) lookahead.push(drawSlot(s));
      const len = this.policy.planBlock!(
        { lookahead, delimiters: this.handle.delimiters, defaultLength: w.planLen, maxLength: w.planLen },
        { options: this.opts },
      );
      w.len = Math.max(len, firstTarget + 1);
      w.planned = true;
      // Slots past the block end go back to unknown (they belong to the next block).
    }
    if (spec.kind === 'window' && spec.wantKV) this.keepWindow(out, spec);
    if (spec.kind === 'sub') this.writeKept(out, spec);
    const [a, b] = this.activeSub();
    const cands: Candidate[] = [];
    const end = Math.min(w.start + b, this.targetEnd());
    for (let p = w.start + a; p < end; p++) if (this.isMasked(p)) cands.push(drawSlot(p - w.start));
    const chosen = this.policy.step(cands, { options: this.opts });
    if (cands.length > 0 && chosen.length === 0) throw new Error(`policy ${this.policy.name} committed nothing`);
    for (const c of chosen) this.commitToken(w.start + c.slot, c, step);
    this.checkStopStrings();
  }

  /** A full-window forward of the sub-block cache: keep its K/V as the current block's. */
  private keepWindow(out: RowOutput, spec: ForwardSpec): void {
    if (!this.kept) this.kept = new KeptWindow(this.pages.allocateScratch(this.scratchFloats()), this.opts.blockSize, this.handle.geometry);
    this.kept.keep(out, spec.ids.length, this.win!.index);
  }

  /** A sub-block forward: write its slots' fresh K/V back into the kept window. */
  private writeKept(out: RowOutput, spec: ForwardSpec): void {
    // every slot committed before this forward lies in [off, b): all kept slots match their tokens again
    this.kept!.writeBack(out, spec.positions[0] - this.win!.start, spec.ids.length);
  }

  // ---------------------------------------------------------------- blocks, text, result

  /** Records the current block's generated span and emits the block event. */
  private endBlock(endOverride?: number): void {
    const w = this.win!;
    const from = Math.max(w.start, this.promptLen);
    const to = Math.min(endOverride ?? w.start + w.len, this.targetEnd() + (this.firstStop < Infinity ? 1 : 0), this.cap);
    if (to > from) this.emitBlock(from, to);
  }

  private emitBlock(from: number, to: number): void {
    const b = to - this.promptLen;
    if (!this.traj.addBlock(from - this.promptLen, b)) return;
    if (this.emitter.listening) this.emitter.emitBlock(this.outputTokens(b), this.phase === 'done', this.forwards);
  }

  /** Generated tokens [0, n) that are known contiguously, cut after the first stop token. */
  private outputTokens(n = Infinity): number[] {
    const out: number[] = [];
    const end = Math.min(this.cap, this.firstStop + 1, this.promptLen + n);
    for (let p = this.promptLen; p < end && p < this.all.length; p++) {
      if (this.all[p] === this.handle.maskId) break;
      out.push(this.all[p]);
    }
    return out;
  }

  private checkStopStrings(): void {
    if (!this.emitter.watching || !this.emitter.findStop(this.outputTokens())) return;
    if (this.phase === 'block') this.endBlock(this.promptLen + this.emitter.stopCut!.tokens);
    this.finish('stop');
  }

  finish(reason: GenerationResult['finishReason']): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    const { tokens: toks, text } = this.emitter.final(this.outputTokens());
    const lastEmitted = this.traj.lastBlockEnd;
    if (lastEmitted < toks.length) this.emitBlock(this.promptLen + lastEmitted, this.promptLen + toks.length);
    // text held back as a possible stop-string prefix that never completed: release it
    else this.emitter.releaseHeld(toks, text, this.forwards);
    const tpf = this.forwards > 0 ? toks.length / this.forwards : 0;
    const prefixHit = this.pages.prefixHitTokens;
    const model = { name: this.handle.name, version: this.handle.version };
    const res: GenerationResult = {
      text,
      tokenIds: toks,
      finishReason: reason,
      usage: { promptTokens: this.promptLen, completionTokens: toks.length },
      stats: { forwards: this.forwards, tpf, wallMs: Date.now() - this.t0, prefillTokens: this.promptLen - prefixHit, prefixCacheHitTokens: prefixHit },
      model,
    };
    if (this.opts.trajectory) {
      res.trajectory = this.traj.build(toks, {
        forwards: this.forwards,
        prefillForwards: this.prefillForwards,
        tpf,
        options: this.opts,
        seed: this.opts.seed,
        model: { ...model },
        promptTokens: this.promptLen,
        prefixCacheHitTokens: prefixHit,
      });
    }
    this.result = res;
    this.releaseAll();
    this.onDone(this);
  }

  /** Frees pages, scratch and the rest of the reservation. Also used when a forward fails. */
  releaseAll(): void {
    this.pages.releaseAll();
    this.kept = null;
  }

  fail(): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    this.releaseAll();
  }
}
