// One generation request as a state machine. The scheduler asks it for its next forward
// (nextForward), runs that forward batched with others, and hands the row back (onOutput).
// The decoding loop lives here, shared by all policies; a policy only says which candidates to commit.
//
// Block mode (fast-dllm-v2, entropy, adablock), per block:
//   window forwards over the block (no cache write) -> draws for the masked slots of the active
//   sub-block (token shift: slot j is predicted by output j-1) -> policy.step commits >= 1 of them;
//   when the block has no masked target left: one commit forward over the finished block writes its
//   KV into the pages and its last output draws slot 0 of the next block.
// Causal mode (ar): one forward per token with KV cache.
import { KvPool, pageFloats, type KvGeometry, type KvPage } from './kv/pool';
import type { ResolvedOptions } from './options';
import type { Candidate, DecodePolicy } from './policies/types';
import { Sfc32 as Rng } from '@dllm/prng';
import { drawToken, greedyDraw, type Draw } from './sampling';
import type { ModelRunner } from './runner/runner';
import type { EngineManifest, TextCodec } from './model-dir';

/** A loaded model version. Sequences hold the handle they started on (hot swap keeps it alive). */
export interface ModelHandle {
  id: number;
  name: string;
  version: string;
  kind: string;
  manifest: EngineManifest;
  /** Key namespace in the KV pool: pages of different versions never mix. */
  namespace: string;
  runner: ModelRunner;
  codec: TextCodec;
  geometry: KvGeometry;
  vocabSize: number;
  maskId: number;
  eosId: number;
  delimiters: ReadonlySet<number>;
  /** Positions the model supports (manifest architecture.max_position_embeddings; Infinity when unknown). */
  maxPositions: number;
  /** Sequences admitted on this handle and not finished. */
  active: number;
  retired: boolean;
}

export interface ForwardSpec {
  seq: Sequence;
  kind: 'prefill' | 'window' | 'sub' | 'commit' | 'ar';
  ids: number[];
  positions: number[];
  /** Block id per new token (block-causal among new tokens); null = causal. */
  blockIds: number[] | null;
  /** Past = this sequence's pages over positions [0, pastLen). */
  pastLen: number;
  /** Extra past after the pages: the kept window K/V of the sub-block cache, with the stale slots blocked. */
  extra: { buf: Float32Array; capacity: number; len: number; blockedFrom: number; blockedTo: number } | null;
  /**
   * The new positions (0..S-1, ascending) this row draws from: the graph's `logit_index` row. Only
   * these get logits and statistics (format v2); empty for KV-only forwards (no LM head at all).
   */
  drawRows: number[];
  wantKV: boolean;
}

/** The draw head's outputs of one forward, for R drawn positions per row (batch.ts pads rows to R). */
export interface DrawOutputs {
  R: number;
  V: number;
  /** [B,R] each: the in-graph statistics (MASK banned). */
  argmax: BigInt64Array;
  maxProb: Float32Array;
  entropy: Float32Array;
  /** [B,R,V] raw logits; fetched only when a row of the batch samples (temperature > 0). */
  logits: Float32Array | null;
}

export interface RowOutput {
  /** Draw statistics (and logits when fetched) of the whole batch; null when no row draws. */
  draws: DrawOutputs | null;
  /** present_key.<l> / present_value.<l> [B,Hkv,S,Dh] per layer, and the row. */
  presentK: Float32Array[] | null;
  presentV: Float32Array[] | null;
  row: number;
  /** The batch's S (rows shorter than it are padded: present K/V rows are S apart). */
  S: number;
}

export interface BlockEvent {
  index: number;
  /** Generated tokens committed in this block (in order). */
  tokenIds: number[];
  /** Text added by this block. */
  text: string;
  completionTokens: number;
  forwards: number;
}

export interface Trajectory {
  /** Generated token ids (the completion; includes the stop token when one ended it). */
  tokenIds: number[];
  /** For each generated token: the index (0-based) of the decoding forward of this sequence that committed it. */
  stepMap: number[];
  /** Probability of the committed token under the distribution it was drawn from. */
  confidence: number[];
  /** Entropy (nats) of that distribution. */
  entropy: number[];
  /** log(confidence): per-token log-prob under the per-step sampling distribution (NOT an AR likelihood). */
  logprobs: number[];
  /** Blocks as [start, end) indices into tokenIds. */
  blocks: Array<[number, number]>;
  /** Decoding forwards (window, sub-block, commit, ar); excludes KV-only prefill forwards. */
  forwards: number;
  prefillForwards: number;
  /** tokenIds.length / forwards (0 when no forward). */
  tpf: number;
  options: ResolvedOptions;
  seed: number;
  model: { name: string; version: string };
  promptTokens: number;
  prefixCacheHitTokens: number;
}

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
  private readonly pages: KvPage[] = [];
  private readonly keys: (string | null)[] = [];
  /** Positions whose KV is in the pages. */
  private committed = 0;
  private phase: 'init' | 'block' | 'ar' | 'done' = 'init';
  private prefillEnd = 0;
  private win: Window | null = null;
  private firstStop = Infinity;
  private stopCut: { tokens: number; text: string } | null = null;
  /**
   * Sub-block cache: the K/V of the current block's window slots, and the lowest slot committed since
   * its K/V was computed (`dirtyFrom`; Infinity when every kept slot matches its token).
   */
  private kept: { buf: Float32Array; capacity: number; block: number; dirtyFrom: number } | null = null;
  private reservedBytes = 0;
  private walkDone = false;
  forwards = 0;
  prefillForwards = 0;
  prefixHitTokens = 0;
  private readonly tStep: number[] = [];
  private readonly tConf: number[] = [];
  private readonly tEnt: number[] = [];
  private readonly tLogp: number[] = [];
  private readonly blocks: Array<[number, number]> = [];
  private emittedText = '';
  private emittedTokens = 0;
  private blockEvents = 0;
  private readonly t0 = Date.now();
  result: GenerationResult | null = null;

  constructor(
    readonly handle: ModelHandle,
    readonly opts: ResolvedOptions,
    readonly policy: DecodePolicy,
    promptIds: readonly number[],
    private readonly pool: KvPool,
    readonly hooks: { signal?: AbortSignal; onBlock?: (e: BlockEvent) => void },
    private readonly onDone: (s: Sequence) => void,
  ) {
    if (promptIds.length === 0) throw new RangeError('the prompt is empty: at least one prompt token is needed');
    for (const t of promptIds) {
      if (!Number.isInteger(t) || t < 0 || t >= handle.vocabSize) throw new RangeError(`prompt token id ${t} is outside the vocabulary (size ${handle.vocabSize})`);
    }
    this.all = [...promptIds];
    this.promptLen = promptIds.length;
    this.maxPos = handle.maxPositions;
    if (this.promptLen >= this.maxPos) throw new RangeError(`the prompt has ${this.promptLen} tokens; the model handles at most ${this.maxPos} positions (max_position_embeddings)`);
    // The model's position limit caps generation like maxNewTokens does (finishReason 'length').
    this.cap = Math.min(this.promptLen + opts.maxNewTokens, this.maxPos);
    this.rng = opts.temperature > 0 ? new Rng(opts.seed) : null;
    this.stopIds = new Set([handle.eosId, ...opts.stopTokenIds]);
  }

  // ---------------------------------------------------------------- memory

  private get pageSize(): number {
    return this.handle.geometry.pagePositions;
  }

  /** Worst-case bytes this sequence can allocate: every page of prompt + cap, plus the sub-block cache scratch. */
  worstCaseBytes(): number {
    const pb = pageFloats(this.handle.geometry) * 4;
    return Math.ceil(this.cap / this.pageSize) * pb + this.scratchFloats() * 4;
  }

  private scratchPositions(): number {
    return this.opts.blockSize;
  }

  private scratchFloats(): number {
    if (!this.opts.subBlockCache || this.policy.mode !== 'block') return 0;
    const g = this.handle.geometry;
    return g.layers * 2 * g.kvHeads * this.scratchPositions() * g.headDim;
  }

  setReservation(bytes: number): void {
    this.reservedBytes = bytes;
  }

  private allocPage(): KvPage {
    const bytes = pageFloats(this.handle.geometry) * 4;
    if (this.reservedBytes < bytes) throw new Error(`sequence ${this.id}: page allocation beyond its reservation`);
    this.reservedBytes -= bytes;
    const p = this.pool.allocate(this.handle.geometry);
    return p;
  }

  private get mode(): string {
    return this.policy.mode === 'causal' ? 'causal' : `bc${this.opts.blockSize}`;
  }

  private sharable(k: number): boolean {
    if (this.policy.mode === 'causal') return true;
    if (this.pageSize % this.opts.blockSize !== 0) return false;
    if (this.policy.planBlock) return (k + 1) * this.pageSize <= this.prefillEnd;
    return true;
  }

  private keyFor(k: number): string | null {
    if (!this.pool.sharing || !this.sharable(k)) return null;
    const parent = k === 0 ? null : this.keys[k - 1];
    if (k > 0 && !parent) return null;
    const toks = this.all.slice(k * this.pageSize, (k + 1) * this.pageSize);
    return KvPool.key(this.handle.namespace, this.mode, parent ?? null, toks);
  }

  /** Takes the shared pages that already hold this prompt's prefix. False while one is still being computed by another sequence. */
  private walkPrefix(limit: number): boolean {
    const ps = this.pageSize;
    while ((this.pages.length + 1) * ps <= limit) {
      const k = this.pages.length;
      const key = this.keyFor(k);
      if (!key) break;
      if (this.pool.has(key)) {
        const p = this.pool.acquire(key)!;
        if (!p.ready) {
          // Another sequence is computing it right now: wait for it (computing it twice wastes the forward).
          this.pool.release(p);
          this.pool.hits--;
          return false;
        }
        const bytes = pageFloats(this.handle.geometry) * 4;
        this.pool.unreserve(bytes);
        this.reservedBytes -= bytes;
        this.pages.push(p);
        this.keys.push(key);
        this.committed = (k + 1) * ps;
        this.prefixHitTokens += ps;
      } else {
        this.pool.misses++;
        break;
      }
    }
    return true;
  }

  /** Makes sure pages exist for positions [from, to); pages that the range fills completely and that are sharable are published as pending. */
  private preparePages(from: number, to: number, publishWhole: boolean): void {
    const ps = this.pageSize;
    for (let k = Math.floor(from / ps); k * ps < to; k++) {
      if (this.pages[k]) continue;
      let p = this.allocPage();
      let key: string | null = null;
      if (publishWhole && k * ps >= from && (k + 1) * ps <= to) {
        key = this.keyFor(k);
        if (key) {
          const q = this.pool.publish(p, key);
          if (q !== p) p = q; // someone else has it: use theirs (ready pages are never rewritten)
        }
      }
      this.pages[k] = p;
      this.keys[k] = key;
    }
  }

  private writeKV(out: RowOutput, spec: ForwardSpec): void {
    const g = this.handle.geometry;
    const S = spec.ids.length;
    const stride = out.S;
    const ps = this.pageSize;
    for (let i = 0; i < S; i++) {
      const pos = spec.positions[i];
      const k = Math.floor(pos / ps);
      const page = this.pages[k];
      if (!page) throw new Error(`sequence ${this.id}: no page for position ${pos}`);
      const off = pos % ps;
      if (!page.ready) {
        for (let l = 0; l < g.layers; l++) {
          for (let h = 0; h < g.kvHeads; h++) {
            const src = ((out.row * g.kvHeads + h) * stride + i) * g.headDim;
            const dk = (((l * 2) * g.kvHeads + h) * ps + off) * g.headDim;
            const dv = (((l * 2 + 1) * g.kvHeads + h) * ps + off) * g.headDim;
            page.data.set(out.presentK![l].subarray(src, src + g.headDim), dk);
            page.data.set(out.presentV![l].subarray(src, src + g.headDim), dv);
          }
        }
        page.fill = Math.max(page.fill, off + 1);
      }
      if (off === ps - 1) this.seal(k);
    }
    this.committed = Math.max(this.committed, spec.positions[S - 1] + 1);
  }

  private seal(k: number): void {
    const page = this.pages[k];
    if (page.ready) return;
    page.ready = true;
    if (page.key) return; // published as pending: now readable by others
    const key = this.keyFor(k);
    this.keys[k] = key;
    if (key) this.pages[k] = this.pool.publish(page, key);
  }

  /** Gather view used by the batch builder: page k and its filled length. */
  pageList(): readonly KvPage[] {
    return this.pages;
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
      if (this.aborted) return this.finish('cancelled'), null;
      const bs = this.opts.blockSize;
      if (this.policy.mode === 'causal') {
        if (!this.walkDone) {
          if (!this.walkPrefix(this.promptLen - 1)) return null;
          this.walkDone = true;
        }
        this.phase = 'ar';
        const from = this.committed;
        this.preparePages(from, this.promptLen, true);
        return this.spec('ar', from, this.promptLen, null, [this.promptLen - 1 - from], true);
      }
      this.prefillEnd = Math.floor((this.promptLen - 1) / bs) * bs;
      if (!this.walkDone) {
        if (!this.walkPrefix(this.prefillEnd)) return null;
        this.walkDone = true;
      }
      this.phase = 'block';
      this.openWindow(this.prefillEnd);
      if (this.committed < this.prefillEnd) {
        const from = this.committed;
        this.preparePages(from, this.prefillEnd, true);
        const blockIds = [];
        for (let p = from; p < this.prefillEnd; p++) blockIds.push(Math.floor(p / bs));
        return this.spec('prefill', from, this.prefillEnd, blockIds, [], true);
      }
    }
    if (this.phase === 'ar') {
      if (this.aborted) return this.finish('cancelled'), null;
      const last = this.all.length - 1;
      this.preparePages(last, last + 1, false);
      return this.spec('ar', last, last + 1, null, [0], true);
    }
    // block mode
    const w = this.win!;
    if (w.fresh && this.aborted) return this.finish('cancelled'), null;
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
      this.preparePages(w.start, w.start + w.len, false);
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
        s.extra = { buf: kept.buf, capacity: kept.capacity, len: w.len, blockedFrom: from, blockedTo: b };
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
    return { seq: this, kind, ids, positions, blockIds, pastLen: kind === 'window' || kind === 'commit' ? this.win!.start : from, extra: null, drawRows, wantKV };
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
    if (k < 0 || !d) throw new Error(`sequence ${this.id}: position ${r} of a ${spec.kind} forward was not requested for drawing (drawRows ${spec.drawRows.join(',')})`);
    const i = out.row * d.R + k;
    if (this.opts.temperature === 0) return greedyDraw(Number(d.argmax[i]), d.maxProb[i], d.entropy[i]);
    if (!d.logits) throw new Error(`sequence ${this.id}: sampling needs logits, which this forward did not fetch`);
    return drawToken(d.logits, i * d.V, d.V, this.opts, this.rng, [this.handle.maskId]);
  }

  private commitToken(pos: number, d: Draw, step: number): void {
    this.all[pos] = d.token;
    const w = this.win;
    if (this.kept && w && this.kept.block === w.index && pos >= w.start && pos < w.start + w.len) this.kept.dirtyFrom = Math.min(this.kept.dirtyFrom, pos - w.start);
    const i = pos - this.promptLen;
    this.tStep[i] = step;
    this.tConf[i] = d.prob;
    this.tEnt[i] = d.entropy;
    this.tLogp[i] = d.logprob;
    if (this.stopIds.has(d.token) && pos < this.firstStop) this.firstStop = pos;
  }

  onOutput(spec: ForwardSpec, out: RowOutput): void {
    if (this.phase === 'done') return;
    const S = spec.ids.length;
    if (spec.kind === 'prefill') {
      this.prefillForwards++;
      this.writeKV(out, spec);
      return;
    }
    const step = this.forwards++;
    if (spec.kind === 'ar') {
      this.writeKV(out, spec);
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
      this.writeKV(out, spec);
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
      const len = this.policy.planBlock!({ lookahead, delimiters: this.handle.delimiters, defaultLength: w.planLen, maxLength: w.planLen }, { options: this.opts });
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

  private keepWindow(out: RowOutput, spec: ForwardSpec): void {
    const g = this.handle.geometry;
    const cap = this.scratchPositions();
    if (!this.kept) {
      const floats = this.scratchFloats();
      const bytes = floats * 4;
      if (this.reservedBytes < bytes) throw new Error(`sequence ${this.id}: scratch beyond its reservation`);
      this.reservedBytes -= bytes;
      this.kept = { buf: this.pool.allocateScratch(floats), capacity: cap, block: -1, dirtyFrom: Infinity };
    }
    const S = spec.ids.length;
    this.copyIntoKept(out, 0, S, g);
    this.kept.block = this.win!.index;
    this.kept.dirtyFrom = Infinity;
  }

  private writeKept(out: RowOutput, spec: ForwardSpec): void {
    const off = spec.positions[0] - this.win!.start;
    this.copyIntoKept(out, off, spec.ids.length, this.handle.geometry);
    // every slot committed before this forward lies in [off, b): all kept slots match their tokens again
    this.kept!.dirtyFrom = Infinity;
  }

  private copyIntoKept(out: RowOutput, slotOffset: number, n: number, g: KvGeometry): void {
    const kept = this.kept!;
    for (let l = 0; l < g.layers; l++) {
      for (let h = 0; h < g.kvHeads; h++) {
        const src = ((out.row * g.kvHeads + h) * out.S) * g.headDim;
        const dk = (((l * 2) * g.kvHeads + h) * kept.capacity + slotOffset) * g.headDim;
        const dv = (((l * 2 + 1) * g.kvHeads + h) * kept.capacity + slotOffset) * g.headDim;
        kept.buf.set(out.presentK![l].subarray(src, src + n * g.headDim), dk);
        kept.buf.set(out.presentV![l].subarray(src, src + n * g.headDim), dv);
      }
    }
  }

  /** Records the current block's generated span and emits the block event. */
  private endBlock(endOverride?: number): void {
    const w = this.win!;
    const from = Math.max(w.start, this.promptLen);
    const to = Math.min(endOverride ?? w.start + w.len, this.targetEnd() + (this.firstStop < Infinity ? 1 : 0), this.cap);
    if (to > from) this.emitBlock(from, to);
  }

  private emitBlock(from: number, to: number): void {
    const a = from - this.promptLen;
    const b = to - this.promptLen;
    if (this.blocks.length > 0 && this.blocks[this.blocks.length - 1][1] > a) return;
    this.blocks.push([a, b]);
    if (!this.hooks.onBlock) return;
    let toks = this.outputTokens(b);
    if (this.stopCut) toks = toks.slice(0, this.stopCut.tokens);
    this.emitText(toks, this.visibleText(toks, this.phase === 'done'));
  }

  /**
   * The text a listener may see so far: never a stop string or what follows it, and while decoding
   * goes on, not the tail that could still grow into a stop string (it is released once it cannot).
   */
  private visibleText(toks: readonly number[], final: boolean): string {
    if (this.stopCut) return this.stopCut.text;
    const text = this.textOf(toks);
    if (final || this.opts.stop.length === 0) return text;
    let hold = 0;
    for (const s of this.opts.stop) {
      for (let k = Math.min(s.length - 1, text.length); k > hold; k--) {
        if (text.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return text.slice(0, text.length - hold);
  }

  private emitText(toks: readonly number[], visible: string): void {
    const e: BlockEvent = {
      index: this.blockEvents++,
      tokenIds: toks.slice(this.emittedTokens),
      text: visible.slice(this.emittedText.length),
      completionTokens: toks.length,
      forwards: this.forwards,
    };
    this.emittedTokens = toks.length;
    this.emittedText = visible;
    try {
      this.hooks.onBlock!(e);
    } catch {
      /* a listener's error must not break decoding */
    }
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

  private textOf(toks: readonly number[]): string {
    return this.handle.codec.decode(toks.filter((t) => !this.stopIds.has(t)));
  }

  private checkStopStrings(): void {
    if (this.opts.stop.length === 0 || this.stopCut) return;
    const toks = this.outputTokens();
    const text = this.textOf(toks);
    let at = -1;
    for (const s of this.opts.stop) {
      const i = text.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at < 0) return;
    const stopStr = this.opts.stop.find((s) => text.indexOf(s) === at)!;
    // Shortest token prefix whose text contains the stop string.
    let n = toks.length;
    for (let k = 1; k <= toks.length; k++) {
      if (this.textOf(toks.slice(0, k)).includes(stopStr)) {
        n = k;
        break;
      }
    }
    this.stopCut = { tokens: n, text: text.slice(0, at) };
    if (this.phase === 'block') this.endBlock(this.promptLen + n);
    this.finish('stop');
  }

  finish(reason: GenerationResult['finishReason']): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    let toks = this.outputTokens();
    let text: string;
    if (this.stopCut) {
      toks = toks.slice(0, this.stopCut.tokens);
      text = this.stopCut.text;
    } else {
      text = this.textOf(toks);
    }
    const lastEmitted = this.blocks.length ? this.blocks[this.blocks.length - 1][1] : 0;
    if (lastEmitted < toks.length) this.emitBlock(this.promptLen + lastEmitted, this.promptLen + toks.length);
    // text held back as a possible stop-string prefix that never completed: release it
    else if (this.hooks.onBlock && this.emittedText.length < text.length) this.emitText(toks, text);
    const tpf = this.forwards > 0 ? toks.length / this.forwards : 0;
    const res: GenerationResult = {
      text,
      tokenIds: toks,
      finishReason: reason,
      usage: { promptTokens: this.promptLen, completionTokens: toks.length },
      stats: { forwards: this.forwards, tpf, wallMs: Date.now() - this.t0, prefillTokens: this.promptLen - this.prefixHitTokens, prefixCacheHitTokens: this.prefixHitTokens },
      model: { name: this.handle.name, version: this.handle.version },
    };
    if (this.opts.trajectory) {
      const n = toks.length;
      res.trajectory = {
        tokenIds: toks,
        stepMap: this.tStep.slice(0, n),
        confidence: this.tConf.slice(0, n),
        entropy: this.tEnt.slice(0, n),
        logprobs: this.tLogp.slice(0, n),
        blocks: this.blocks.filter(([a]) => a < n).map(([a, b]) => [a, Math.min(b, n)] as [number, number]),
        forwards: this.forwards,
        prefillForwards: this.prefillForwards,
        tpf,
        options: this.opts,
        seed: this.opts.seed,
        model: { name: this.handle.name, version: this.handle.version },
        promptTokens: this.promptLen,
        prefixCacheHitTokens: this.prefixHitTokens,
      };
    }
    this.result = res;
    this.releaseAll();
    this.onDone(this);
  }

  /** Frees pages, scratch and the rest of the reservation. Also used when a forward fails. */
  releaseAll(): void {
    for (const p of this.pages) if (p) this.pool.release(p);
    this.pages.length = 0;
    if (this.kept) this.pool.releaseScratch(this.kept.buf);
    this.kept = null;
    if (this.reservedBytes > 0) this.pool.unreserve(this.reservedBytes);
    this.reservedBytes = 0;
  }

  fail(): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    this.releaseAll();
  }
}
