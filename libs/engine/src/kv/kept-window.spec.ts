import { KeptWindow } from './kept-window';
import type { KvGeometry } from './pool';
import type { RowOutput } from '../forward';

const g: KvGeometry = { layers: 2, kvHeads: 2, headDim: 2, pagePositions: 8 };

/** Present K/V of row `row` of a batch of 2 rows with S positions: K = 1000*l + 100*h + 10*i + d (+5000 on row 1), V negated. */
function present(S: number, row: number): RowOutput {
  const mk = (sign: number) =>
    Array.from({ length: g.layers }, (_, l) =>
      Float32Array.from({ length: 2 * g.kvHeads * S * g.headDim }, (_, j) => {
        const d = j % 2;
        const i = Math.floor(j / 2) % S;
        const h = Math.floor(j / (2 * S)) % g.kvHeads;
        const r = Math.floor(j / (2 * S * g.kvHeads));
        return sign * (5000 * r + 1000 * l + 100 * h + 10 * i + d);
      }),
    );
  return { draws: null, presentK: mk(1), presentV: mk(-1), row, S };
}

const at = (w: KeptWindow, l: number, kv: number, h: number, slot: number) => {
  const o = (((l * 2 + kv) * g.kvHeads + h) * w.capacity + slot) * g.headDim;
  return Array.from(w.buf.subarray(o, o + 2));
};

describe('KeptWindow', () => {
  it('keeps a full window and writes a sub-block back at its slot offset, for the right batch row', () => {
    const w = new KeptWindow(new Float32Array(KeptWindow.floats(g, 8)), 8, g);
    w.keep(present(8, 1), 8, 3);
    expect(w.block).toBe(3);
    expect(at(w, 1, 0, 1, 5)).toEqual([5000 + 1000 + 100 + 50, 5000 + 1000 + 100 + 51]);
    expect(at(w, 0, 1, 0, 7)).toEqual([-5070, -5071]);
    w.writeBack(present(3, 0), 4, 3); // slots 4..6 from new positions 0..2 of row 0
    expect(at(w, 1, 0, 1, 4)).toEqual([1100, 1101]);
    expect(at(w, 1, 1, 1, 6)).toEqual([-1120, -1121]);
    expect(at(w, 1, 0, 1, 7)).toEqual([6170, 6171]); // untouched
  });

  it('tracks the lowest slot committed since its K/V was computed, per block', () => {
    const w = new KeptWindow(new Float32Array(KeptWindow.floats(g, 8)), 8, g);
    w.keep(present(8, 0), 8, 0);
    w.markCommitted(0, 5);
    w.markCommitted(0, 2);
    w.markCommitted(1, 0); // another block: not this window's slots
    expect(w.dirtyFrom).toBe(2);
    expect(w.asExtra(8, 1, 8)).toMatchObject({ capacity: 8, len: 8, blockedFrom: 1, blockedTo: 8 });
    w.writeBack(present(7, 0), 1, 7);
    expect(w.dirtyFrom).toBe(Infinity);
  });

  it('rejects a buffer too small for its capacity', () => {
    expect(() => new KeptWindow(new Float32Array(10), 8, g)).toThrow(RangeError);
  });
});
