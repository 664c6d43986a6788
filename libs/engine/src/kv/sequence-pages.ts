// One sequence's share of the KV pool: its page table (page k holds positions [k*P, (k+1)*P)), the
// prefix walk that takes pages other sequences already computed, publication of the pages it computes,
// the writes of a forward's present K/V into them, and its byte reservation (pages and scratch are
// only ever taken out of it, so a sequence never fails mid-way for lack of memory).
// The decoding state machine (../sequence.ts) decides which positions to compute; this only stores them.
import { KvPool, pageFloats, type KvGeometry, type KvPage } from './pool';
import type { RowOutput } from '../forward';

/** How a sequence's pages may be shared (the page key covers the attention mode and the token chain). */
export interface PageSharing {
  /** KV pool key namespace: the model's `name@version`. */
  namespace: string;
  /** 'causal' or `bc<blockSize>`: causal and block-causal K/V of the same tokens differ. */
  mode: string;
  /** Pages below this position may be shared (published / looked up); later ones stay private. Infinity = all. */
  shareLimit: number;
}

/** The page table of one sequence over positions [0, committed), backed by `KvPool`. */
export class SequencePages {
  private readonly pages: KvPage[] = [];
  private readonly keys: (string | null)[] = [];
  private readonly scratch: Float32Array[] = [];
  /** Positions whose K/V is in the pages (the walked prefix plus every write). */
  committed = 0;
  /** Prompt positions taken from shared pages instead of being computed. */
  prefixHitTokens = 0;
  private reservedBytes = 0;

  /**
   * @param owner names the sequence in errors
   * @param tokens the sequence's tokens (read when a page is keyed: page k's key covers tokens [k*P, (k+1)*P))
   * @param sharing null = no page of this sequence is ever shared
   */
  constructor(
    private readonly owner: string,
    private readonly pool: KvPool,
    private readonly geometry: KvGeometry,
    private readonly tokens: readonly number[],
    readonly sharing: PageSharing | null,
  ) {}

  /** Positions per page (the model's block size). */
  get pageSize(): number {
    return this.geometry.pagePositions;
  }

  /** Bytes of one page. */
  get pageBytes(): number {
    return pageFloats(this.geometry) * 4;
  }

  /** Bytes the scheduler reserved in the pool for this sequence (its worst case, `Sequence.worstCaseBytes`). */
  setReservation(bytes: number): void {
    this.reservedBytes = bytes;
  }

  /** Takes `bytes` out of the reservation; throws (naming `what`) when the reservation is smaller. */
  private take(bytes: number, what: string): void {
    if (this.reservedBytes < bytes) throw new Error(`${this.owner}: ${what} beyond its reservation`);
    this.reservedBytes -= bytes;
  }

  private allocPage(): KvPage {
    this.take(this.pageBytes, 'page allocation');
    return this.pool.allocate(this.geometry);
  }

  /** Scratch memory of `floats` float32 out of the reservation (released with `releaseAll`). */
  allocateScratch(floats: number): Float32Array {
    this.take(floats * 4, 'scratch');
    const buf = this.pool.allocateScratch(floats);
    this.scratch.push(buf);
    return buf;
  }

  private keyFor(k: number): string | null {
    const s = this.sharing;
    if (!this.pool.sharing || !s || (k + 1) * this.pageSize > s.shareLimit) return null;
    const parent = k === 0 ? null : this.keys[k - 1];
    if (k > 0 && !parent) return null;
    const toks = this.tokens.slice(k * this.pageSize, (k + 1) * this.pageSize);
    return KvPool.key(s.namespace, s.mode, parent ?? null, toks);
  }

  /**
   * Takes the shared pages that already hold this sequence's prefix, whole pages up to position `limit`.
   * False while one of them is still being computed by another sequence (ask again next tick).
   */
  walkPrefix(limit: number): boolean {
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
        const bytes = this.pageBytes;
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

  /**
   * Makes sure pages exist for positions [from, to). With `publishWhole`, pages the range fills
   * completely and that may be shared are published as pending at once, so other sequences wait for
   * them instead of computing them again.
   */
  prepare(from: number, to: number, publishWhole: boolean): void {
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

  /**
   * Writes the present K/V of `out`'s row for new positions `positions` (ascending; present row i is
   * positions[i]) into the pages; a page whose last slot is written is sealed (and published when it
   * may be shared). Pages already ready (taken from another sequence) are not rewritten.
   */
  write(out: RowOutput, positions: readonly number[]): void {
    const g = this.geometry;
    const S = positions.length;
    const stride = out.S;
    const ps = this.pageSize;
    for (let i = 0; i < S; i++) {
      const pos = positions[i];
      const k = Math.floor(pos / ps);
      const page = this.pages[k];
      if (!page) throw new Error(`${this.owner}: no page for position ${pos}`);
      const off = pos % ps;
      if (!page.ready) {
        for (let l = 0; l < g.layers; l++) {
          for (let h = 0; h < g.kvHeads; h++) {
            const src = ((out.row * g.kvHeads + h) * stride + i) * g.headDim;
            const dk = ((l * 2 * g.kvHeads + h) * ps + off) * g.headDim;
            const dv = (((l * 2 + 1) * g.kvHeads + h) * ps + off) * g.headDim;
            page.data.set(out.presentK![l].subarray(src, src + g.headDim), dk);
            page.data.set(out.presentV![l].subarray(src, src + g.headDim), dv);
          }
        }
        page.fill = Math.max(page.fill, off + 1);
      }
      if (off === ps - 1) this.seal(k);
    }
    this.committed = Math.max(this.committed, positions[S - 1] + 1);
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

  /** The page table, for the batch builder's gather (page k and its filled length). */
  list(): readonly KvPage[] {
    return this.pages;
  }

  /** Frees pages, scratch and the rest of the reservation. */
  releaseAll(): void {
    for (const p of this.pages) if (p) this.pool.release(p);
    this.pages.length = 0;
    for (const b of this.scratch) this.pool.releaseScratch(b);
    this.scratch.length = 0;
    if (this.reservedBytes > 0) this.pool.unreserve(this.reservedBytes);
    this.reservedBytes = 0;
  }
}
