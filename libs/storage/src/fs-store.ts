// Large values on a shared volume (every replica mounts the same directory). Writes are atomic
// (temp file + rename), so a reader never sees half a file. Expiry is kept in a small sidecar file
// and enforced on read; sweep() removes what expired (and, with maxAgeSeconds, anything older:
// values written without an expiry, temp files of writers that died mid-write).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { BlobTooLargeError, checkKey, toBuffer, type BlobStore, type PutOptions } from './blob-store';

export interface FsBlobStoreOptions {
  dir: string;
  maxBytes?: number;
  /** 0 = keep until deleted. */
  defaultTtlSeconds?: number;
  /**
   * sweep() also removes every file last written longer ago than this, expiry or not (like an S3
   * lifecycle rule): values stored without a TTL, abandoned temp files. 0/undefined = off.
   */
  maxAgeSeconds?: number;
}

const META = '.expires';

/**
 * Writes a stream to `file` through optional transforms, creating the file before any byte flows.
 * fs.createWriteStream(path) opens its file asynchronously, so a pipeline that fails on its first
 * chunk can reject before the open completes and the file then appears after the caller removed
 * it; opening the handle first means a caller's cleanup after a rejection always finds the file.
 * The handle is closed by the write stream (on finish or on error).
 * @throws whatever the source, a transform or the write throws (the file is left for the caller).
 */
export async function pipeToFile(file: string, source: Readable, ...transforms: Transform[]): Promise<void> {
  const fh = await fsp.open(file, 'w');
  await pipeline([source, ...transforms, fh.createWriteStream()]);
}

export class FsBlobStore implements BlobStore {
  readonly kind = 'fs';
  readonly maxBytes: number;
  private readonly dir: string;
  constructor(private readonly o: FsBlobStoreOptions) {
    this.dir = path.resolve(o.dir);
    this.maxBytes = o.maxBytes ?? Number.MAX_SAFE_INTEGER;
  }

  /** The file a key is stored in. */
  pathOf(key: string): string {
    const p = path.join(this.dir, ...checkKey(key).replace(/:/g, '/').split('/').filter(Boolean));
    if (!p.startsWith(this.dir + path.sep)) throw new Error(`invalid blob key '${key}'`);
    if (p.endsWith(META)) throw new Error(`invalid blob key '${key}': reserved suffix ${META}`);
    return p;
  }

  private async writeMeta(file: string, opts: PutOptions): Promise<void> {
    const ttl = opts.ttlSeconds ?? this.o.defaultTtlSeconds ?? 0;
    if (ttl > 0) await fsp.writeFile(file + META, String(Date.now() + ttl * 1000));
    else await fsp.rm(file + META, { force: true });
  }

  private async expired(file: string): Promise<boolean> {
    let raw: string;
    try {
      raw = await fsp.readFile(file + META, 'utf8');
    } catch {
      return false;
    }
    if (Date.now() < Number(raw)) return false;
    await Promise.all([fsp.rm(file, { force: true }), fsp.rm(file + META, { force: true })]);
    return true;
  }

  async put(key: string, data: Buffer | string, opts: PutOptions = {}): Promise<void> {
    const buf = toBuffer(data);
    if (buf.length > this.maxBytes) throw new BlobTooLargeError(key, buf.length, this.maxBytes, 'fs');
    const file = this.pathOf(key);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    await fsp.writeFile(tmp, buf);
    await this.writeMeta(file, opts);
    await fsp.rename(tmp, file);
  }

  async putStream(key: string, data: Readable, opts: PutOptions = {}): Promise<number> {
    const file = this.pathOf(key);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    let bytes = 0;
    const max = this.maxBytes;
    const count = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        if (bytes > max) cb(new BlobTooLargeError(key, bytes, max, 'fs'));
        else cb(null, chunk);
      },
    });
    try {
      await pipeToFile(tmp, data, count);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    await this.writeMeta(file, opts);
    await fsp.rename(tmp, file);
    return bytes;
  }

  async get(key: string): Promise<Buffer | null> {
    const file = this.pathOf(key);
    if (await this.expired(file)) return null;
    try {
      return await fsp.readFile(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async getStream(key: string): Promise<Readable | null> {
    const file = this.pathOf(key);
    if (await this.expired(file)) return null;
    try {
      const fh = await fsp.open(file, 'r');
      return fh.createReadStream();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async exists(key: string): Promise<boolean> {
    const file = this.pathOf(key);
    if (await this.expired(file)) return false;
    return fs.existsSync(file);
  }

  async delete(key: string): Promise<boolean> {
    const file = this.pathOf(key);
    const had = fs.existsSync(file);
    await Promise.all([fsp.rm(file, { force: true }), fsp.rm(file + META, { force: true })]);
    return had;
  }

  /** Removes every expired value under the directory (and, with maxAgeSeconds, every older one); returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    let n = 0;
    const maxAgeMs = (this.o.maxAgeSeconds ?? 0) * 1000;
    const walk = async (d: string): Promise<void> => {
      let entries: fs.Dirent[];
      try {
        entries = await fsp.readdir(d, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.name.endsWith(META)) {
          if (await this.expired(p.slice(0, -META.length))) n++;
        } else if (maxAgeMs > 0) {
          const st = await fsp.stat(p).catch(() => undefined);
          if (!st || now - st.mtimeMs <= maxAgeMs) continue;
          await Promise.all([fsp.rm(p, { force: true }), fsp.rm(p + META, { force: true })]);
          if (!e.name.endsWith('.tmp')) n++;
        }
      }
    };
    await walk(this.dir);
    return n;
  }
}
