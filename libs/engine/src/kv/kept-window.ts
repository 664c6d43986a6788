// The sub-block cache's scratch (Fast-dLLM v2 sub-block cache, docs/ENGINE.md): the K/V of the current
// block's window slots, kept between the steps of one block so later steps run only the active
// sub-block against it. Which slots a step reruns is the decoder's choice (../sequence.ts); this keeps
// the bytes and tracks which kept slots no longer match their tokens.
import type { KvGeometry } from './pool';
import type { ExtraPast, RowOutput } from '../forward';

/** Window K/V of one block: layout [layers, 2 (K, V), Hkv, capacity, Dh] float32. */
export class KeptWindow {
  /** Index of the block (the sequence's window count) whose K/V this holds; -1 before the first keep. */
  block = -1;
  /** Lowest slot committed since its K/V was computed (Infinity when every kept slot matches its token). */
  dirtyFrom = Infinity;

  /** Float32 values a window of `positions` slots needs. */
  static floats(g: KvGeometry, positions: number): number {
    return g.layers * 2 * g.kvHeads * positions * g.headDim;
  }

  /** @param buf at least `KeptWindow.floats(geometry, capacity)` floats (scratch from the pool) */
  constructor(
    readonly buf: Float32Array,
    readonly capacity: number,
    private readonly geometry: KvGeometry,
  ) {
    if (buf.length < KeptWindow.floats(geometry, capacity)) throw new RangeError(`kept window: ${buf.length} floats for ${capacity} slots`);
  }

  /** Keeps the K/V of a full-window forward (present rows 0..n-1 = slots 0..n-1) as block `block`'s. */
  keep(out: RowOutput, n: number, block: number): void {
    this.copy(out, 0, n);
    this.block = block;
    this.dirtyFrom = Infinity;
  }

  /**
   * Writes back the K/V of a sub-block forward over slots [slotOffset, slotOffset + n). The forward
   * covered every slot committed before it, so all kept slots match their tokens again.
   */
  writeBack(out: RowOutput, slotOffset: number, n: number): void {
    this.copy(out, slotOffset, n);
    this.dirtyFrom = Infinity;
  }

  /** Notes that window slot `slot` of block `block` got its token (its kept K/V, if any, is stale). */
  markCommitted(block: number, slot: number): void {
    if (block === this.block) this.dirtyFrom = Math.min(this.dirtyFrom, slot);
  }

  /** This window as extra past of a forward: `len` slots, with [blockedFrom, blockedTo) masked out. */
  asExtra(len: number, blockedFrom: number, blockedTo: number): ExtraPast {
    return { buf: this.buf, capacity: this.capacity, len, blockedFrom, blockedTo };
  }

  private copy(out: RowOutput, slotOffset: number, n: number): void {
    const g = this.geometry;
    for (let l = 0; l < g.layers; l++) {
      for (let h = 0; h < g.kvHeads; h++) {
        const src = (out.row * g.kvHeads + h) * out.S * g.headDim;
        const dk = ((l * 2 * g.kvHeads + h) * this.capacity + slotOffset) * g.headDim;
        const dv = (((l * 2 + 1) * g.kvHeads + h) * this.capacity + slotOffset) * g.headDim;
        this.buf.set(out.presentK![l].subarray(src, src + n * g.headDim), dk);
        this.buf.set(out.presentV![l].subarray(src, src + n * g.headDim), dv);
      }
    }
  }
}
