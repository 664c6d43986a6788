import { KvPool, pageFloats, type KvGeometry } from './pool';
import { SequencePages, type PageSharing } from './sequence-pages';
import type { RowOutput } from '../forward';

const g: KvGeometry = { layers: 2, kvHeads: 1, headDim: 2, pagePositions: 4 };
const PB = pageFloats(g) * 4;
const sharing = (shareLimit = Infinity): PageSharing => ({ namespace: 'm@1', mode: 'bc4', shareLimit });

/** A forward's present K/V for one row over S positions: K = 1000*layer + 10*i + d, V = its negation. */
function present(S: number): RowOutput {
  const mk = (sign: number) =>
    Array.from({ length: g.layers }, (_, l) => Float32Array.from({ length: S * g.headDim }, (_, j) => sign * (1000 * l + 10 * Math.floor(j / 2) + (j % 2))));
  return { draws: null, presentK: mk(1), presentV: mk(-1), row: 0, S };
}

function reserved(pool: KvPool, pages: SequencePages, bytes: number): void {
  expect(pool.reserve(bytes)).toBe(true);
  pages.setReservation(bytes);
}

describe('SequencePages', () => {
  it('writes present K/V into the page layout [layer, K|V, head, pos, dim] and seals a filled page', () => {
    const pool = new KvPool(PB * 8);
    const toks = [1, 2, 3, 4, 5];
    const pages = new SequencePages('seq 1', pool, g, toks, sharing());
    reserved(pool, pages, 2 * PB);
    pages.prepare(0, 5, true);
    pages.write(present(5), [0, 1, 2, 3, 4]);
    expect(pages.committed).toBe(5);
    const [p0, p1] = pages.list();
    expect(p0.ready).toBe(true);
    expect(p1.ready).toBe(false);
    expect(p1.fill).toBe(1);
    // layer 1, V, position 2 of page 0: -(1000 + 20 + d)
    const at = ((1 * 2 + 1) * g.kvHeads * g.pagePositions + 2) * g.headDim;
    expect(Array.from(p0.data.subarray(at, at + 2))).toEqual([-1020, -1021]);
    // position 4 = slot 0 of page 1, layer 0 K: 40, 41
    expect(Array.from(p1.data.subarray(0, 2))).toEqual([40, 41]);
  });

  it('lets a second sequence with the same prefix take the sealed page (hit) instead of computing it', () => {
    const pool = new KvPool(PB * 8);
    const a = new SequencePages('seq a', pool, g, [1, 2, 3, 4, 9], sharing());
    reserved(pool, a, 2 * PB);
    a.prepare(0, 4, true);
    a.write(present(4), [0, 1, 2, 3]);
    const b = new SequencePages('seq b', pool, g, [1, 2, 3, 4, 7], sharing());
    reserved(pool, b, 2 * PB);
    expect(b.walkPrefix(4)).toBe(true);
    expect(b.list()[0]).toBe(a.list()[0]);
    expect(b.committed).toBe(4);
    expect(b.prefixHitTokens).toBe(4);
    // a turned one page of its reservation into a page; b gave the shared page's bytes back: one page left each
    expect(pool.stats()).toMatchObject({ reservedBytes: 2 * PB, usedBytes: PB, hits: 1 });
  });

  it('waits (false) while the shared page is still being computed by another sequence', () => {
    const pool = new KvPool(PB * 8);
    const a = new SequencePages('seq a', pool, g, [1, 2, 3, 4], sharing());
    reserved(pool, a, PB);
    a.prepare(0, 4, true); // published as pending, not written yet
    const b = new SequencePages('seq b', pool, g, [1, 2, 3, 4], sharing());
    reserved(pool, b, PB);
    expect(b.walkPrefix(4)).toBe(false);
    expect(b.list()).toHaveLength(0);
    a.write(present(4), [0, 1, 2, 3]);
    expect(b.walkPrefix(4)).toBe(true);
    expect(b.list()[0]).toBe(a.list()[0]);
  });

  it('never shares pages past the share limit, nor any page without sharing', () => {
    for (const s of [sharing(4), null]) {
      const pool = new KvPool(PB * 8);
      const a = new SequencePages('seq a', pool, g, [1, 2, 3, 4, 5, 6, 7, 8], s);
      reserved(pool, a, 2 * PB);
      a.prepare(0, 8, true);
      a.write(present(8), [0, 1, 2, 3, 4, 5, 6, 7]);
      const b = new SequencePages('seq b', pool, g, [1, 2, 3, 4, 5, 6, 7, 8], s);
      reserved(pool, b, 2 * PB);
      b.walkPrefix(8);
      expect(b.list().length).toBe(s ? 1 : 0);
    }
  });

  it('refuses to allocate beyond its reservation, and releaseAll gives pages, scratch and reservation back', () => {
    const pool = new KvPool(PB * 8);
    const pages = new SequencePages('sequence 7', pool, g, [1, 2, 3, 4, 5], null);
    reserved(pool, pages, PB + 16);
    pages.prepare(0, 4, false);
    expect(() => pages.prepare(4, 5, false)).toThrow('sequence 7: page allocation beyond its reservation');
    expect(() => pages.allocateScratch(5)).toThrow('sequence 7: scratch beyond its reservation');
    expect(pages.allocateScratch(4)).toHaveLength(4);
    expect(() => pages.write(present(1), [4])).toThrow('sequence 7: no page for position 4');
    pages.releaseAll();
    expect(pool.stats()).toMatchObject({ usedBytes: 0, reservedBytes: 0 });
  });
});
