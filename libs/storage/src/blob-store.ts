// One interface for stored bytes (job results, batch files, batch outputs): Redis with a TTL and a
// byte bound for small values, a shared filesystem volume for large ones, or both behind a tiered
// store. Every gateway replica and worker reads the same store.
import { Readable } from 'node:stream';

export interface PutOptions {
  /** Expiry; omitted = the store's default TTL (0 = keep until deleted). */
  ttlSeconds?: number;
}

export interface BlobStore {
  /** Human-readable kind for logs and /readyz ('redis', 'fs', 'tiered'). */
  readonly kind: string;
  /** Largest value put() accepts (bytes). */
  readonly maxBytes: number;
  put(key: string, data: Buffer | string, opts?: PutOptions): Promise<void>;
  /** The bytes, or null when missing or expired. */
  get(key: string): Promise<Buffer | null>;
  /** Stream large values without holding them in memory (null when missing). */
  getStream?(key: string): Promise<Readable | null>;
  /** Stores a stream (large files); not all stores support it. */
  putStream?(key: string, data: Readable, opts?: PutOptions): Promise<number>;
  exists(key: string): Promise<boolean>;
  /** true when something was deleted. */
  delete(key: string): Promise<boolean>;
  /** Removes expired values the backend does not expire by itself (files); returns how many. */
  sweep?(): Promise<number>;
  close?(): Promise<void>;
}

export class BlobTooLargeError extends Error {
  constructor(
    readonly key: string,
    readonly bytes: number,
    readonly maxBytes: number,
    store: string,
  ) {
    super(`value for '${key}' is ${bytes} bytes; the ${store} store keeps at most ${maxBytes} bytes per value`);
    this.name = 'BlobTooLargeError';
  }
}

/** Keys: letters, digits and . _ - : / (no '..', no leading '/'), at most 512 chars. */
export const BLOB_KEY_RE = /^(?!\/)(?!.*\.\.)[A-Za-z0-9._:/-]{1,512}$/;

export function checkKey(key: string): string {
  if (typeof key !== 'string' || !BLOB_KEY_RE.test(key))
    throw new Error(`invalid blob key '${String(key).slice(0, 80)}': letters, digits and . _ - : / only, no '..', no leading '/'`);
  return key;
}

export const toBuffer = (d: Buffer | string) => (typeof d === 'string' ? Buffer.from(d, 'utf8') : d);

export async function putJson(store: BlobStore, key: string, value: unknown, opts?: PutOptions): Promise<number> {
  const buf = Buffer.from(JSON.stringify(value), 'utf8');
  await store.put(key, buf, opts);
  return buf.length;
}

export async function getJson<T = unknown>(store: BlobStore, key: string): Promise<T | null> {
  const b = await store.get(key);
  return b ? (JSON.parse(b.toString('utf8')) as T) : null;
}

/** The value as a stream: the store's own getStream when it has one, else its bytes (null when missing). */
export async function streamBlob(store: BlobStore, key: string): Promise<Readable | null> {
  if (store.getStream) return store.getStream(key);
  const b = await store.get(key);
  return b ? Readable.from([b]) : null;
}

/** Stores a stream: the store's own putStream when it has one, else buffered (bounded by maxBytes). */
export async function putBlobStream(store: BlobStore, key: string, data: Readable, opts?: PutOptions): Promise<number> {
  if (store.putStream) return store.putStream(key, data, opts);
  const parts: Buffer[] = [];
  let bytes = 0;
  for await (const c of data) {
    const b = toBuffer(c as Buffer | string);
    bytes += b.length;
    if (bytes > store.maxBytes) {
      data.destroy();
      throw new BlobTooLargeError(key, bytes, store.maxBytes, store.kind);
    }
    parts.push(b);
  }
  await store.put(key, Buffer.concat(parts), opts);
  return bytes;
}
