// Small values in the fast store (Redis), large ones in the big store (shared volume), behind one
// key space: a large value leaves a tiny pointer in the fast store, so every reader finds it the
// same way and Redis stays bounded.
import type { Readable } from 'node:stream';
import { Readable as R } from 'node:stream';
import { toBuffer, type BlobStore, type PutOptions } from './blob-store';

const POINTER = Buffer.from('\u0000dllm-blob-pointer\u0000', 'utf8');

export class TieredBlobStore implements BlobStore {
  readonly kind = 'tiered';
  readonly maxBytes: number;
  constructor(
    private readonly small: BlobStore,
    private readonly large: BlobStore,
  ) {
    this.maxBytes = large.maxBytes;
  }

  async put(key: string, data: Buffer | string, opts: PutOptions = {}): Promise<void> {
    const buf = toBuffer(data);
    if (buf.length <= this.small.maxBytes && !buf.subarray(0, POINTER.length).equals(POINTER)) {
      await this.small.put(key, buf, opts);
      await this.large.delete(key).catch(() => false);
      return;
    }
    await this.large.put(key, buf, opts);
    await this.small.put(key, POINTER, opts);
  }

  async putStream(key: string, data: Readable, opts: PutOptions = {}): Promise<number> {
    if (!this.large.putStream) throw new Error(`the ${this.large.kind} store cannot store streams`);
    const n = await this.large.putStream(key, data, opts);
    await this.small.put(key, POINTER, opts);
    return n;
  }

  private async isPointer(key: string): Promise<Buffer | null | 'pointer'> {
    const v = await this.small.get(key);
    if (v && v.equals(POINTER)) return 'pointer';
    return v;
  }

  async get(key: string): Promise<Buffer | null> {
    const v = await this.isPointer(key);
    return v === 'pointer' ? this.large.get(key) : v;
  }

  async getStream(key: string): Promise<Readable | null> {
    const v = await this.isPointer(key);
    if (v === 'pointer') return this.large.getStream ? this.large.getStream(key) : this.large.get(key).then((b) => (b ? R.from([b]) : null));
    return v ? R.from([v]) : null;
  }

  async exists(key: string): Promise<boolean> {
    return this.small.exists(key);
  }

  async sweep(): Promise<number> {
    const a = (await this.small.sweep?.()) ?? 0;
    const b = (await this.large.sweep?.()) ?? 0;
    return a + b;
  }

  async delete(key: string): Promise<boolean> {
    const [a, b] = await Promise.all([this.small.delete(key), this.large.delete(key)]);
    return a || b;
  }
}
