// Where rollout trajectories live: records in the blob store (libs/storage; never in BullMQ job
// data), a JSONL file per rollout for download, and a Redis stream of record references that
// learners page through with a cursor, exactly once per consumer group.
//
// Cursor protocol (GET .../stream?group=G&cursor=C):
//   - no cursor: the first page; the consumer group is created at the start of the stream.
//   - cursor C (the `cursor` of the previous page): every entry up to C is acknowledged (it will never
//     be delivered to group G again), then the next page is returned.
//   - a learner that crashed and repeats its last cursor gets the un-acknowledged page again
//     (same entries), so nothing is lost and nothing acknowledged is repeated.
//   - reader takeover (XAUTOCLAIM semantics): entries delivered to another reader (consumer) of the
//     same group and not acknowledged for `claimIdleMs` are claimed by the reader asking, once it
//     has nothing of its own pending. Such a "takeover page" is remembered per reader (a small key)
//     so that only its own cursor acknowledges it: repeating the older cursor re-delivers it.
//   - `done` is true only when the rollout published everything and every entry was acknowledged
//     by this group (nothing pending on any reader, the last entry delivered).
import type { Redis } from 'ioredis';
import type { BlobStore, PutOptions } from '@dllm/storage';
import type { TrajectoryRecord } from './trajectory';

export const CONSUMER_GROUP_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const STREAM_ID_RE = /^\d{1,20}-\d{1,20}$/;

export const rolloutBlobKeys = {
  request: (id: string) => `rollouts/${id}/request.json`,
  group: (id: string, g: number) => `rollouts/${id}/groups/${g}.json`,
  final: (id: string, g: number) => `rollouts/${id}/final/${g}.json`,
  jsonl: (id: string) => `rollouts/${id}/trajectories.jsonl`,
  result: (id: string) => `rollouts/${id}/result.json`,
};

/** A bad stream read parameter; `param` names the query parameter (group, consumer, cursor, count, claim_idle_ms). */
export class StreamCursorError extends RangeError {
  constructor(
    message: string,
    readonly param: 'group' | 'consumer' | 'cursor' | 'count' | 'claim_idle_ms' = 'cursor',
  ) {
    super(message);
  }
}

/** Default idle time (ms) after which a reader's unacknowledged records may be taken over by another reader of its group. */
export const DEFAULT_CLAIM_IDLE_MS = 60_000;
/** Bounds of claimIdleMs: at least 100 ms (a live reader is not robbed mid-page), at most a day. */
export const CLAIM_IDLE_MS_RANGE = Object.freeze({ min: 100, max: 86_400_000 });

/** Options of one page read. */
export interface ReadOptions {
  /** Reader name inside the group (default 'learner'). */
  consumer?: string;
  /** Take over another reader's records after they stayed unacknowledged this long (ms; default DEFAULT_CLAIM_IDLE_MS). */
  claimIdleMs?: number;
}

export interface StreamPage {
  records: TrajectoryRecord[];
  /** Pass back as `cursor` to acknowledge this page and get the next; null when the page is empty and nothing was acknowledged before. */
  cursor: string | null;
  /** The rollout finished publishing and this group has read and acknowledged everything. */
  done: boolean;
  /** Entries in the stream so far / total once published. */
  published: number;
  total: number | null;
  /** Records of this page taken over from another reader of the group (0 on ordinary pages). */
  claimed: number;
}

export class TrajectoryStore {
  constructor(
    private readonly redis: Redis,
    private readonly blobs: BlobStore,
    /** Redis key prefix (the queue prefix of the deployment). */
    private readonly prefix: string,
    private readonly putOpts: PutOptions = {},
  ) {}

  streamKey(rolloutId: string): string {
    return `${this.prefix}:dllm-rollout:${rolloutId}:stream`;
  }
  private totalKey(rolloutId: string): string {
    return `${this.prefix}:dllm-rollout:${rolloutId}:total`;
  }

  async putJson(key: string, value: unknown): Promise<number> {
    const buf = Buffer.from(JSON.stringify(value), 'utf8');
    await this.blobs.put(key, buf, this.putOpts);
    return buf.length;
  }

  async getJson<T>(key: string): Promise<T | null> {
    const b = await this.blobs.get(key);
    return b ? (JSON.parse(b.toString('utf8')) as T) : null;
  }

  /** The records of one group as a child stored them (before batch scoring). */
  async putGroup(rolloutId: string, groupIndex: number, records: TrajectoryRecord[]): Promise<string> {
    const key = rolloutBlobKeys.group(rolloutId, groupIndex);
    await this.putJson(key, records);
    return key;
  }

  /**
   * Final, scored records: one blob per group, the JSONL of all, then one stream entry per record
   * (in group, sample order) and the total. Idempotent for a retried parent: the stream is only
   * written once (guarded by the total key).
   */
  async publish(rolloutId: string, groups: TrajectoryRecord[][], ttlSeconds?: number): Promise<{ jsonlKey: string; records: number; bytes: number }> {
    const jsonlKey = rolloutBlobKeys.jsonl(rolloutId);
    const lines: string[] = [];
    for (const g of groups) {
      if (!g.length) continue;
      await this.putJson(rolloutBlobKeys.final(rolloutId, g[0].groupIndex), g);
      for (const r of g) lines.push(JSON.stringify(r));
    }
    const body = Buffer.from(lines.length ? lines.join('\n') + '\n' : '', 'utf8');
    await this.blobs.put(jsonlKey, body, this.putOpts);
    const total = lines.length;
    const claimed = await this.redis.set(this.totalKey(rolloutId) + ':lock', '1', 'EX', 3600, 'NX');
    if (claimed === 'OK') {
      const m = this.redis.multi();
      const key = this.streamKey(rolloutId);
      for (const g of groups)
        for (const r of g) m.xadd(key, '*', 'g', String(r.groupIndex), 's', String(r.sampleIndex), 'ref', rolloutBlobKeys.final(rolloutId, r.groupIndex));
      m.set(this.totalKey(rolloutId), String(total));
      if (ttlSeconds) {
        m.expire(key, ttlSeconds);
        m.expire(this.totalKey(rolloutId), ttlSeconds);
      }
      await m.exec();
    }
    return { jsonlKey, records: total, bytes: body.length };
  }

  async jsonl(rolloutId: string): Promise<Buffer | null> {
    return this.blobs.get(rolloutBlobKeys.jsonl(rolloutId));
  }

  private claimKey(rolloutId: string, group: string, consumer: string): string {
    return `${this.streamKey(rolloutId)}:claim:${group}:${consumer}`;
  }

  /**
   * One page for consumer group `group` (see the protocol at the top of the file).
   * `opts` may be a reader name (the old signature) or { consumer, claimIdleMs }.
   * Throws StreamCursorError for a bad group, reader, cursor, count or claimIdleMs.
   */
  async read(rolloutId: string, group: string, cursor: string | null, count = 100, opts: string | ReadOptions = {}): Promise<StreamPage> {
    const o: ReadOptions = typeof opts === 'string' ? { consumer: opts } : opts;
    const consumer = o.consumer ?? 'learner';
    const claimIdleMs = o.claimIdleMs ?? DEFAULT_CLAIM_IDLE_MS;
    if (!CONSUMER_GROUP_RE.test(group)) throw new StreamCursorError(`group must be 1-64 letters, digits, . _ - (got '${group.slice(0, 64)}')`, 'group');
    if (!CONSUMER_GROUP_RE.test(consumer))
      throw new StreamCursorError(`consumer must be 1-64 letters, digits, . _ - (got '${consumer.slice(0, 64)}')`, 'consumer');
    if (cursor !== null && !STREAM_ID_RE.test(cursor))
      throw new StreamCursorError(`cursor must be a stream id like 1700000000000-0 (the cursor of the previous page), got '${cursor.slice(0, 40)}'`);
    if (!Number.isInteger(count) || count < 1 || count > 1000) throw new StreamCursorError(`count must be an integer in [1, 1000], got ${count}`, 'count');
    if (!Number.isInteger(claimIdleMs) || claimIdleMs < CLAIM_IDLE_MS_RANGE.min || claimIdleMs > CLAIM_IDLE_MS_RANGE.max) {
      throw new StreamCursorError(
        `claimIdleMs must be an integer in [${CLAIM_IDLE_MS_RANGE.min}, ${CLAIM_IDLE_MS_RANGE.max}] (milliseconds), got ${claimIdleMs}`,
        'claim_idle_ms',
      );
    }
    const key = this.streamKey(rolloutId);
    try {
      await this.redis.xgroup('CREATE', key, group, '0', 'MKSTREAM');
    } catch (e) {
      if (!String((e as Error).message).includes('BUSYGROUP')) throw e;
    }
    const claimKey = this.claimKey(rolloutId, group, consumer);
    const claimRaw = await this.redis.get(claimKey);
    const lastClaim = claimRaw ? (JSON.parse(claimRaw) as { cursor: string; ids: string[] }) : null;
    const totalRaw = await this.redis.get(this.totalKey(rolloutId));
    const total = totalRaw === null ? null : Number(totalRaw);
    const published = await this.redis.xlen(key);
    let claimed = 0;
    let entries: Array<[string, string[]]> = [];
    if (cursor !== null) {
      // acknowledge everything this consumer was given up to the cursor, except an unacknowledged
      // takeover page when the cursor is not that page's own (its ids may lie below an older cursor)
      const pending = (await this.redis.xpending(key, group, '-', cursor, 10_000, consumer)) as Array<[string, string, number, number]>;
      const keep = lastClaim && lastClaim.cursor !== cursor ? new Set(lastClaim.ids) : null;
      const ack = pending.map((p) => p[0]).filter((id) => !keep?.has(id));
      if (ack.length) await this.redis.xack(key, group, ...ack);
      if (lastClaim && !keep) await this.redis.del(claimKey);
      else if (keep) {
        // a repeated request from before the takeover page was acknowledged: the same page again
        entries = await this.entriesById(key, lastClaim!.ids);
        claimed = entries.length;
        return { records: await this.resolve(entries), cursor: lastClaim!.cursor, done: false, published, total, claimed };
      }
    } else if (lastClaim) {
      entries = await this.entriesById(key, lastClaim.ids);
      if (entries.length) return { records: await this.resolve(entries), cursor: lastClaim.cursor, done: false, published, total, claimed: entries.length };
    }
    // un-acknowledged entries after the cursor first (a repeated request), then records another
    // reader left unacknowledged for claimIdleMs, then new ones
    entries = await this.readGroup(key, group, consumer, count, cursor ?? '0');
    if (!entries.length) {
      entries = await this.autoclaim(key, group, consumer, claimIdleMs, count);
      if (entries.length) {
        claimed = entries.length;
        const ids = entries.map((e) => e[0]);
        await this.redis.set(claimKey, JSON.stringify({ cursor: ids[ids.length - 1], ids }), 'EX', 7 * 86_400);
      }
    }
    if (!entries.length) entries = await this.readGroup(key, group, consumer, count, '>');
    const records = await this.resolve(entries);
    let done = false;
    if (total !== null && entries.length === 0) {
      const summary = (await this.redis.xpending(key, group)) as [number, ...unknown[]];
      const info = (await this.redis.xinfo('GROUPS', key)) as unknown[][];
      const mine = info.map((row) => toObject(row)).find((o) => o.name === group);
      const last = (await this.redis.xrevrange(key, '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
      const caughtUp = last.length === 0 || (mine !== undefined && String(mine['last-delivered-id']) === last[0][0]);
      done = Number(summary[0]) === 0 && caughtUp;
    }
    return { records, cursor: entries.length ? entries[entries.length - 1][0] : cursor, done, published, total, claimed };
  }

  /** XAUTOCLAIM: up to `count` entries idle for at least `minIdleMs` on other readers of the group, now this reader's (ids ascending). */
  private async autoclaim(key: string, group: string, consumer: string, minIdleMs: number, count: number): Promise<Array<[string, string[]]>> {
    const out: Array<[string, string[]]> = [];
    let start = '0-0';
    // XAUTOCLAIM scans a bounded range per call; continue until the cursor wraps or the page is full
    for (let i = 0; i < 100 && out.length < count; i++) {
      const res = (await this.redis.xautoclaim(key, group, consumer, minIdleMs, start, 'COUNT', count - out.length)) as [
        string,
        Array<[string, string[] | null]>,
        ...unknown[],
      ];
      for (const e of res[1]) if (e && e[1] !== null) out.push(e as [string, string[]]);
      start = res[0];
      if (start === '0-0') break;
    }
    return out.sort((a, b) => compareIds(a[0], b[0]));
  }

  /** Entries by id (a re-delivered takeover page), skipping ids trimmed from the stream. */
  private async entriesById(key: string, ids: string[]): Promise<Array<[string, string[]]>> {
    const out: Array<[string, string[]]> = [];
    for (const id of ids) {
      const r = (await this.redis.xrange(key, id, id)) as Array<[string, string[]]>;
      if (r.length) out.push(r[0]);
    }
    return out;
  }

  private async readGroup(key: string, group: string, consumer: string, count: number, from: string): Promise<Array<[string, string[]]>> {
    if (from !== '>') {
      // XREADGROUP with an id returns this consumer's pending entries with ids > id
      const res = (await this.redis.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', key, from)) as Array<
        [string, Array<[string, string[]]>]
      > | null;
      return res?.[0]?.[1]?.filter((e) => e[1] !== null) ?? [];
    }
    const res = (await this.redis.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'STREAMS', key, '>')) as Array<
      [string, Array<[string, string[]]>]
    > | null;
    return res?.[0]?.[1] ?? [];
  }

  private async resolve(entries: Array<[string, string[]]>): Promise<TrajectoryRecord[]> {
    const cache = new Map<string, TrajectoryRecord[]>();
    const out: TrajectoryRecord[] = [];
    for (const [, fields] of entries) {
      const f = toObject(fields);
      const ref = String(f.ref);
      let recs = cache.get(ref);
      if (!recs) {
        recs = (await this.getJson<TrajectoryRecord[]>(ref)) ?? [];
        cache.set(ref, recs);
      }
      const rec = recs.find((r) => r.sampleIndex === Number(f.s));
      if (!rec) throw new Error(`trajectory ${ref}#${f.s} is missing from the store (expired?)`);
      out.push(rec);
    }
    return out;
  }

  /** Deletes the stream and its bookkeeping (tests, demos). Blobs expire with the store's TTL. */
  async dropStream(rolloutId: string): Promise<void> {
    await this.redis.del(this.streamKey(rolloutId), this.totalKey(rolloutId), this.totalKey(rolloutId) + ':lock');
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.streamKey(rolloutId)}:claim:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await this.redis.del(...keys);
    } while (cursor !== '0');
  }
}

function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  return am === bm ? (as === bs ? 0 : as < bs ? -1 : 1) : am < bm ? -1 : 1;
}

function toObject(flat: unknown[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) o[String(flat[i])] = flat[i + 1];
  return o;
}
