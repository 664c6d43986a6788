// Files (OpenAI /v1/files): bytes on the shared volume (STORAGE_DIR, every replica mounts it),
// metadata in a small Redis hash with the retention TTL, plus a per-owner index for listing.
import { Inject, Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Redis } from 'ioredis';
import type { FileObject } from '@dllm/contracts';
import { ApiError } from '../http/api-error';
import type { GatewaySettings } from '../settings';
import { REDIS, SETTINGS } from '../tokens';

export interface StoredFile extends FileObject {
  owner: string;
}

@Injectable()
export class FileService {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
  ) {}

  private key(id: string) {
    return `${this.settings.keyPrefix}file:${id}`;
  }
  private index(owner: string) {
    return `${this.settings.keyPrefix}files:${owner}`;
  }
  pathOf(id: string): string {
    return path.join(this.settings.storageDir, 'files', id.slice(-2), id);
  }

  newId(): string {
    return `file-${randomBytes(12).toString('hex')}`;
  }

  async create(owner: string, filename: string, purpose: string, data: Buffer): Promise<StoredFile> {
    const id = this.newId();
    const p = this.pathOf(id);
    await fs.promises.mkdir(path.dirname(p), { recursive: true });
    await fs.promises.writeFile(p, data);
    return this.register(owner, id, filename, purpose, data.length);
  }

  /** Records metadata for bytes already written at pathOf(id) (batch outputs are streamed there). */
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

  async read(owner: string, id: string): Promise<Buffer> {
    await this.get(owner, id);
    try {
      return await fs.promises.readFile(this.pathOf(id));
    } catch {
      throw new ApiError(404, `The content of file '${id}' is no longer available.`, 'file_gone');
    }
  }

  async open(id: string): Promise<{ size: number; stream: fs.ReadStream }> {
    const p = this.pathOf(id);
    const st = await fs.promises.stat(p).catch(() => undefined);
    if (!st) throw new ApiError(404, `The content of file '${id}' is no longer available.`, 'file_gone');
    return { size: st.size, stream: fs.createReadStream(p) };
  }

  async delete(owner: string, id: string): Promise<void> {
    await this.get(owner, id);
    await this.redis.multi().del(this.key(id)).zrem(this.index(owner), id).exec();
    await fs.promises.rm(this.pathOf(id), { force: true });
  }

  /** Deletes file bytes older than the retention (their metadata has expired in Redis already). */
  async sweepDisk(now = Date.now()): Promise<number> {
    const root = path.join(this.settings.storageDir, 'files');
    let removed = 0;
    const dirs = await fs.promises.readdir(root).catch(() => [] as string[]);
    for (const d of dirs) {
      for (const f of await fs.promises.readdir(path.join(root, d)).catch(() => [] as string[])) {
        const p = path.join(root, d, f);
        const st = await fs.promises.stat(p).catch(() => undefined);
        if (st && now - st.mtimeMs > this.settings.retentionSeconds * 1000) {
          await fs.promises.rm(p, { force: true });
          removed++;
        }
      }
    }
    return removed;
  }
}
