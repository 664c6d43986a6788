// Shared paged KV pool. One page = one block of positions x all layers x (K, V) x kv heads x head dim,
// for one model geometry. Pages of committed blocks are shared between sequences through a hash chain
// (key = hash(namespace = model name + version, attention mode, parent key, the block's token ids)),
// reference counted, and kept after their last user leaves in an LRU that is evicted under pressure.
// The byte budget is never exceeded: memory is reserved at admission (worst case of the sequence) and
// a request that cannot be reserved waits in the engine's queue.
import { createHash } from 'node:crypto';
import { CpuPageMemory, type PageMemory } from './memory';

export interface KvGeometry {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Positions per page (the model's block size). */
  pagePositions: number;
}

export function pageFloats(g: KvGeometry): number {
  return g.layers * 2 * g.kvHeads * g.pagePositions * g.headDim;
}

/** Float offset of (layer, kv (0 = K, 1 = V), head, position) inside a page. */
export function pageOffset(g: KvGeometry, layer: number, kv: number, head: number, pos: number): number {
  return (((layer * 2 + kv) * g.kvHeads + head) * g.pagePositions + pos) * g.headDim;
}

export class KvPage {
  key: string | null = null;
  refs = 1;
  /** Positions written so far (0..pagePositions). */
  fill = 0;
  /** False while the sequence that computes it has not written it yet (others wait for it). */
  ready = false;
  lastUse = 0;
  constructor(
    readonly id: number,
    readonly geometry: KvGeometry,
    readonly data: Float32Array,
    readonly bytes: number,
  ) {}
}

export interface PoolStats {
  capacityBytes: number;
  usedBytes: number;
  reservedBytes: number;
  pages: number;
  cachedPages: number;
  scratchBytes: number;
  hits: number;
  misses: number;
  evictions: number;
  peakUsedBytes: number;
}

export class KvPool {
  private readonly byKey = new Map<string, KvPage>();
  /** Unreferenced keyed pages, least recently used first (Map keeps insertion order). */
  private readonly lru = new Map<number, KvPage>();
  private readonly live = new Set<KvPage>();
  private nextId = 1;
  private clock = 0;
  private used = 0;
  private reserved = 0;
  private scratch = 0;
  private peak = 0;
  hits = 0;
  misses = 0;
  evictions = 0;
  /** Prefix sharing on (default) or off (every sequence computes and keeps private pages; for A/B measurements). */
  sharing = true;

  constructor(
    readonly capacityBytes: number,
    private readonly memory: PageMemory = new CpuPageMemory(),
  ) {
    if (!(capacityBytes > 0) || !Number.isFinite(capacityBytes))
      throw new RangeError(`kv pool capacity must be a positive number of bytes, got ${capacityBytes}`);
  }

  static key(namespace: string, mode: string, parent: string | null, tokens: readonly number[]): string {
    const h = createHash('sha256');
    h.update(namespace)
      .update('\0')
      .update(mode)
      .update('\0')
      .update(parent ?? 'root')
      .update('\0');
    h.update(Buffer.from(Int32Array.from(tokens).buffer));
    return h.digest('base64url');
  }

  get usedBytes(): number {
    return this.used;
  }

  /** Bytes that could be made available now (free + evictable). */
  available(): number {
    let evictable = 0;
    for (const p of this.lru.values()) evictable += p.bytes;
    return this.capacityBytes - this.used - this.reserved + evictable;
  }

  /** Reserves `bytes` for later allocations, evicting cached pages if needed. False when impossible now. */
  reserve(bytes: number): boolean {
    if (bytes > this.capacityBytes) return false;
    if (this.available() < bytes) return false;
    this.makeRoom(bytes);
    this.reserved += bytes;
    return true;
  }

  unreserve(bytes: number): void {
    this.reserved -= bytes;
    if (this.reserved < 0) throw new Error(`kv pool: reservation underflow (${this.reserved})`);
  }

  private makeRoom(bytes: number): void {
    while (this.capacityBytes - this.used - this.reserved < bytes) {
      const first = this.lru.values().next();
      if (first.done) throw new Error('kv pool: out of memory (no evictable page); this is a reservation bug');
      this.evict(first.value);
    }
  }

  private evict(p: KvPage): void {
    this.lru.delete(p.id);
    if (p.key) this.byKey.delete(p.key);
    this.freePage(p);
    this.evictions++;
  }

  private freePage(p: KvPage): void {
    this.live.delete(p);
    this.used -= p.bytes;
    this.memory.release(p.data);
  }

  /** A private page (refs 1, no key), paid from the caller's reservation. */
  allocate(g: KvGeometry): KvPage {
    const floats = pageFloats(g);
    const bytes = floats * 4;
    this.unreserve(bytes);
    const page = new KvPage(this.nextId++, g, this.memory.allocate(floats), bytes);
    this.used += bytes;
    if (this.used > this.capacityBytes) throw new Error('kv pool: budget exceeded (reservation bug)');
    this.peak = Math.max(this.peak, this.used);
    page.lastUse = ++this.clock;
    this.live.add(page);
    return page;
  }

  /** Scratch memory (sub-block cache window), paid from the caller's reservation. */
  allocateScratch(floats: number): Float32Array {
    this.unreserve(floats * 4);
    this.used += floats * 4;
    this.scratch += floats * 4;
    this.peak = Math.max(this.peak, this.used);
    return this.memory.allocate(floats);
  }

  releaseScratch(buf: Float32Array): void {
    this.used -= buf.length * 4;
    this.scratch -= buf.length * 4;
    this.memory.release(buf);
  }

  /** Finds a shared page and takes a reference to it; counts a hit or a miss. */
  acquire(key: string): KvPage | null {
    const p = this.byKey.get(key);
    if (!p) {
      this.misses++;
      return null;
    }
    this.hits++;
    if (p.refs === 0) this.lru.delete(p.id);
    p.refs++;
    p.lastUse = ++this.clock;
    return p;
  }

  /** Whether a page with this key exists (no reference taken, no counters). */
  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /**
   * Publishes a page under `key` so others can share it. If another page already has the key, the
   * caller's page is released and the existing one is returned with a reference taken.
   */
  publish(page: KvPage, key: string): KvPage {
    const existing = this.byKey.get(key);
    if (existing && existing !== page) {
      if (existing.refs === 0) this.lru.delete(existing.id);
      existing.refs++;
      existing.lastUse = ++this.clock;
      this.release(page);
      return existing;
    }
    page.key = key;
    this.byKey.set(key, page);
    return page;
  }

  release(p: KvPage): void {
    if (p.refs <= 0) throw new Error(`kv pool: page ${p.id} released more often than acquired`);
    p.refs--;
    if (p.refs > 0) return;
    if (p.key && p.ready) {
      p.lastUse = ++this.clock;
      this.lru.set(p.id, p);
    } else {
      if (p.key) this.byKey.delete(p.key);
      this.freePage(p);
    }
  }

  /** Drops every cached (unreferenced) page whose key namespace is no longer wanted. */
  dropCached(): number {
    let n = 0;
    for (const p of [...this.lru.values()]) {
      this.evict(p);
      n++;
    }
    return n;
  }

  stats(): PoolStats {
    return {
      capacityBytes: this.capacityBytes,
      usedBytes: this.used,
      reservedBytes: this.reserved,
      pages: this.live.size,
      cachedPages: this.lru.size,
      scratchBytes: this.scratch,
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      peakUsedBytes: this.peak,
    };
  }
}
