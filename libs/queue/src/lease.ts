// A Redis lease: one holder at a time per key, identified by a random token. Acquire is
// `SET key token PX ttl NX`; extend and release are token-checked Lua (lua/lease-*.lua), so a holder
// whose lease expired and was taken by someone else can neither extend nor delete the new holder's
// lease. While work runs, the holder renews the lease (every ttl/3); if a renewal finds the lease
// gone, `signal` aborts so long work can stop instead of running beside a second holder.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { luaFile, withScripts } from './lua';

const LUA_DIR = `${__dirname}/lua`;
const SCRIPTS = {
  dllmLeaseExtend: luaFile(LUA_DIR, 'lease-extend', 1),
  dllmLeaseRelease: luaFile(LUA_DIR, 'lease-release', 1),
};

const ttlOf = (ms: number) => Math.max(1, Math.floor(ms));

/** A held lease. Create with Lease.acquire. */
export class Lease {
  private readonly abort = new AbortController();
  private timer?: NodeJS.Timeout;
  private released = false;

  private constructor(
    private readonly redis: Redis,
    /** The Redis key. */
    readonly key: string,
    /** This holder's token (random, 128 bits). */
    readonly token: string,
    /** Time to live in ms, used by renewals. */
    readonly ttlMs: number,
  ) {}

  /** Takes the lease when nobody holds it; null when another holder does. */
  static async acquire(redis: Redis, key: string, ttlMs: number): Promise<Lease | null> {
    const token = randomBytes(16).toString('hex');
    const won = await redis.set(key, token, 'PX', ttlOf(ttlMs), 'NX');
    return won === 'OK' ? new Lease(redis, key, token, ttlOf(ttlMs)) : null;
  }

  /** Aborted when a renewal found the lease lost (expired and gone, or taken by another holder). */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Whether this holder still knows itself the owner (false after release or a failed renewal). */
  get held(): boolean {
    return !this.released && !this.abort.signal.aborted;
  }

  /** Extends the lease to `ttlMs` from now, only if this token still holds it. Returns whether it did. */
  async extend(ttlMs = this.ttlMs): Promise<boolean> {
    if (this.released) return false;
    const r = await withScripts(this.redis, SCRIPTS).dllmLeaseExtend(this.key, this.token, ttlOf(ttlMs));
    if (r !== 1) this.lose();
    return r === 1;
  }

  /** Deletes the lease only if this token holds it (compare-and-delete). Stops renewals. Returns whether it deleted it. */
  async release(): Promise<boolean> {
    this.stopRenewing();
    if (this.released) return false;
    this.released = true;
    return (await withScripts(this.redis, SCRIPTS).dllmLeaseRelease(this.key, this.token)) === 1;
  }

  /** Renews every `everyMs` (default ttl/3) until stopRenewing/release; a lost lease aborts `signal`. */
  startRenewing(everyMs = Math.max(10, Math.floor(this.ttlMs / 3))): void {
    if (this.timer || this.released) return;
    this.timer = setInterval(() => {
      this.extend().catch(() => undefined); // a Redis blip: the next tick tries again before the ttl ends
    }, everyMs);
    this.timer.unref();
  }

  stopRenewing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private lose(): void {
    this.stopRenewing();
    if (!this.abort.signal.aborted) this.abort.abort(new Error(`lease ${this.key} was lost`));
  }
}

export interface WithLeaseOptions {
  /**
   * Release when `fn` ends (true: the next caller may start at once), or keep it until it expires
   * (false, default: periodic housekeeping that every replica schedules runs once per period).
   */
  release?: boolean;
}

/**
 * Runs `fn` only if this caller wins the lease `key` (ttlMs); returns whether it ran. The lease is
 * renewed while `fn` runs (so work longer than ttlMs keeps it) and `fn` receives it (its `signal`
 * aborts if the lease is lost). Renewal stops when `fn` settles; then the lease is released
 * (options.release) or left to expire.
 */
export async function withLease(
  redis: Redis,
  key: string,
  ttlMs: number,
  fn: (lease: Lease) => Promise<unknown>,
  options: WithLeaseOptions = {},
): Promise<boolean> {
  const lease = await Lease.acquire(redis, key, ttlMs);
  if (!lease) return false;
  lease.startRenewing();
  try {
    await fn(lease);
  } finally {
    lease.stopRenewing();
    if (options.release) await lease.release().catch(() => false);
  }
  return true;
}
