import { KvPool, pageFloats, type KvGeometry } from './pool';

const g: KvGeometry = { layers: 1, kvHeads: 1, headDim: 2, pagePositions: 4 };
const PB = pageFloats(g) * 4; // 64 bytes

describe('KvPool', () => {
  it('shares a published page by key, counts hits and misses, and caches it after release (LRU)', () => {
    const pool = new KvPool(PB * 4);
    const key = KvPool.key('m@1', 'bc32', null, [1, 2, 3, 4]);
    expect(pool.acquire(key)).toBeNull();
    expect(pool.reserve(PB)).toBe(true);
    const p = pool.allocate(g);
    expect(pool.publish(p, key)).toBe(p);
    p.ready = true;
    const q = pool.acquire(key);
    expect(q).toBe(p);
    expect(p.refs).toBe(2);
    pool.release(p);
    pool.release(p);
    expect(pool.stats()).toMatchObject({ hits: 1, misses: 1, cachedPages: 1, usedBytes: PB });
    expect(pool.acquire(key)).toBe(p); // from the LRU
    expect(pool.stats().cachedPages).toBe(0);
  });

  it('keys differ by namespace (model version), mode, parent and tokens', () => {
    const k = KvPool.key('m@1', 'bc32', null, [1, 2]);
    expect(KvPool.key('m@2', 'bc32', null, [1, 2])).not.toBe(k);
    expect(KvPool.key('m@1', 'causal', null, [1, 2])).not.toBe(k);
    expect(KvPool.key('m@1', 'bc32', 'x', [1, 2])).not.toBe(k);
    expect(KvPool.key('m@1', 'bc32', null, [2, 1])).not.toBe(k);
    expect(KvPool.key('m@1', 'bc32', null, [1, 2])).toBe(k);
  });

  it('evicts least recently used cached pages to satisfy a reservation, never exceeding the budget', () => {
    const pool = new KvPool(PB * 3);
    const pages = [];
    for (let i = 0; i < 3; i++) {
      expect(pool.reserve(PB)).toBe(true);
      const p = pool.allocate(g);
      p.ready = true;
      pool.publish(p, `k${i}`);
      pages.push(p);
    }
    expect(pool.reserve(PB)).toBe(false); // all referenced
    pool.release(pages[1]);
    pool.release(pages[0]);
    expect(pool.reserve(PB * 2)).toBe(true); // evicts both
    expect(pool.stats().evictions).toBe(2);
    expect(pool.has('k0')).toBe(false);
    expect(pool.has('k2')).toBe(true);
    expect(pool.stats().usedBytes + pool.stats().reservedBytes).toBeLessThanOrEqual(PB * 3);
    expect(pool.reserve(PB * 4)).toBe(false); // more than the capacity: never
  });

  it('a page that was never made ready is dropped (not cached) when its owner leaves', () => {
    const pool = new KvPool(PB * 2);
    pool.reserve(PB);
    const p = pool.allocate(g);
    pool.publish(p, 'pending');
    pool.release(p);
    expect(pool.has('pending')).toBe(false);
    expect(pool.stats().usedBytes).toBe(0);
  });

  it('publishing a duplicate key hands back the existing page and frees the copy', () => {
    const pool = new KvPool(PB * 2);
    pool.reserve(PB * 2);
    const a = pool.allocate(g);
    a.ready = true;
    pool.publish(a, 'k');
    const b = pool.allocate(g);
    expect(pool.publish(b, 'k')).toBe(a);
    expect(a.refs).toBe(2);
    expect(pool.stats().usedBytes).toBe(PB);
  });

  it('throws on double release and on a bad capacity', () => {
    const pool = new KvPool(PB);
    pool.reserve(PB);
    const p = pool.allocate(g);
    pool.release(p);
    expect(() => pool.release(p)).toThrow(/released/);
    expect(() => new KvPool(0)).toThrow(/capacity/);
  });
});
