// Files (OpenAI /v1/files): bytes in the file store (libs/storage BlobStore, STORAGE_BACKEND: the
// shared volume's STORAGE_DIR/files that every replica mounts, or an S3 bucket's <S3_PREFIX>files/),
// metadata in a small Redis hash with the retention TTL, plus a per-owner index for listing.
import { Inject, Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import type { Redis } from 'ioredis';
import type { FileObject } from '@dllm/contracts';
import { putBlobStream, streamBlob, type BlobStore } from '@dllm/storage';
import { ApiError } from '../http/api-error';
import type { GatewaySettings } from '../settings';
import { FILE_STORE, REDIS, SETTINGS } from '../tokens';

export interface StoredFile extends FileObject {
  owner: string;
}

/**
 * Writes one file as a stream of text (batch outputs): bytes go to the store as they are written,
 * with backpressure, so a large output never sits in memory whole. end() returns the byte count;
 * abort() drops what was written.
 */
export class FileWriter {
  private readonly pass = new PassThrough();
  private readonly stored: Promise<number>;
  bytes = 0;

  constructor(store: BlobStore, key: string) {
    // The store may attach to the stream only after some async set-up; an abort before that must
    // not be an unhandled 'error' event (the store still sees the destroyed stream and fails).
    this.pass.on('error', () => undefined);
    this.stored = putBlobStream(store, key, this.pass);
    this.stored.catch(() => undefined); // awaited in write()/end(); never an unhandled rejection
  }

  async write(text: string | Buffer): Promise<void> {
    if (this.pass.destroyed) {
      await this.stored;
      throw new Error('file writer is closed');
    }
    this.bytes += Buffer.byteLength(text);
    if (!this.pass.write(text)) await Promise.race([once(this.pass, 'drain'), this.stored]);
  }

  async end(): Promise<number> {
    this.pass.end();
    return this.stored;
  }

  async abort(reason = new Error('aborted')): Promise<void> {
    this.pass.destroy(reason);
    await this.stored.catch(() => undefined);
  }
}

@Injectable()
export class FileService {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
    @Inject(FILE_STORE) private readonly store: BlobStore,
  ) {}

  private key(id: string) {
    return `${this.settings.keyPrefix}file:${id}`;
  }
  private index(owner: string) {
    return `${this.settings.keyPrefix}files:${owner}`;
  }
  /** The file's key in the store (fanned out by the id's last two hex digits). */
  blobKey(id: string): string {
    return `${id.slice(-2)}/${id}`;
  }

  newId(): string {
    return `file-${randomBytes(12).toString('hex')}`;
  }

  async create(owner: string, filename: string, purpose: string, data: Buffer): Promise<StoredFile> {
    const id = this.newId();
    await this.store.put(this.blobKey(id), data);
    return this.register(owner, id, filename, purpose, data.length);
  }

  /** A streaming writer for a new file's bytes; register() it once they are all written. */
  writer(id: string): FileWriter {
    return new FileWriter(this.store, this.blobKey(id));
  }

  /** Drops bytes written for a file that will not be registered (an empty batch output). */
  async discard(id: string): Promise<void> {
    await this.store.delete(this.blobKey(id));
  }

  /** Records metadata for bytes already in the store (batch outputs are streamed there). */
  async register(owner: string, id: string, filename: string, purpose: string, bytes: number): Promise<StoredFile> {
    const now = Math.floor(Date.now() / 1000);
    const ttl = this.settings.retentionSeconds;
    const f: StoredFile = { id, object: 'file', bytes, created_at: now, expires_at: now + ttl, filename, purpose, status: 'processed', owner };
    await this.redis
      .multi()
      .set(this.key(id), JSON.stringify(f), 'EX', ttl)
      .zadd(this.index(owner), now, id)
      .zremrangebyscore(this.index(owner), 0, now - ttl)
      .expire(this.index(owner), ttl)
      .exec();
    return f;
  }

  async get(owner: string, id: string): Promise<StoredFile> {
    const raw = await this.redis.get(this.key(id));
    const f = raw ? (JSON.parse(raw) as StoredFile) : undefined;
    if (!f || f.owner !== owner) throw ApiError.notFound('file', id);
    return f;
  }

  async list(owner: string, limit = 100): Promise<StoredFile[]> {
    const ids = await this.redis.zrevrange(this.index(owner), 0, limit - 1);
    if (!ids.length) return [];
    const raws = await this.redis.mget(ids.map((i) => this.key(i)));
    return raws.filter((r): r is string => !!r).map((r) => JSON.parse(r) as StoredFile);
  }

  private gone(id: string): ApiError {
    return new ApiError(404, `The content of file '${id}' is no longer available.`, 'file_gone');
  }

  /** The whole file (batch input validation). */
  async read(owner: string, id: string): Promise<Buffer> {
    await this.get(owner, id);
    const b = await this.store.get(this.blobKey(id));
    if (!b) throw this.gone(id);
    return b;
  }

  /** The file's bytes as a stream (downloads); its size is the one recorded at register(). */
  async open(f: StoredFile): Promise<{ size: number; stream: Readable }> {
    const stream = await streamBlob(this.store, this.blobKey(f.id));
    if (!stream) throw this.gone(f.id);
    return { size: f.bytes, stream };
  }

  async delete(owner: string, id: string): Promise<void> {
    await this.get(owner, id);
    await this.redis.multi().del(this.key(id)).zrem(this.index(owner), id).exec();
    await this.store.delete(this.blobKey(id));
  }

  /** Deletes bytes past the retention (their metadata has expired in Redis already); returns how many. */
  async sweep(): Promise<number> {
    return (await this.store.sweep?.()) ?? 0;
  }
}
