// Policy versions of a served model, in Redis: every registered version gets a sequence number
// (registration order), which is what staleness is measured in. Workers subscribe to the channel
// and hot-swap their engine; each sample carries the version that produced it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Redis } from 'ioredis';

/** The registration script (KEYS/ARGV documented in the file); `npm run build` copies the .lua files of libs next to the compiled code. */
const REGISTER_LUA = fs.readFileSync(path.join(__dirname, 'lua', 'register-version.lua'), 'utf8');
const REGISTER_CMD = 'dllmRegisterPolicyVersion';

type RegisteringRedis = Redis & {
  [REGISTER_CMD]: (
    versions: string,
    seq: string,
    latest: string,
    name: string,
    version: string,
    dir: string,
    createdAt: string,
    channel: string,
  ) => Promise<number>;
};

export interface PolicyVersion {
  name: string;
  version: string;
  /** 1, 2, 3... in registration order per model. A version served but never registered counts as 0. */
  seq: number;
  dir: string;
  createdAt: number;
}

export interface SwapAnnouncement {
  name: string;
  version: string;
  dir: string;
  seq: number;
}

/**
 * One message of the registry's channel as a SwapAnnouncement, or null when it is not one (not
 * JSON, or a field missing or of the wrong type). Subscribers (worker weight sync, gateway request
 * facts) read announcements through this one parser.
 */
export function parseAnnouncement(message: string): SwapAnnouncement | null {
  let a: Partial<SwapAnnouncement> | null;
  try {
    a = JSON.parse(message) as Partial<SwapAnnouncement> | null;
  } catch {
    return null;
  }
  if (!a || typeof a.name !== 'string' || typeof a.version !== 'string' || typeof a.dir !== 'string' || !Number.isInteger(a.seq)) return null;
  return { name: a.name, version: a.version, dir: a.dir, seq: a.seq! };
}

export class PolicyVersionConflict extends Error {}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const VERSION_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

export class PolicyRegistry {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    // once per connection: ioredis sends EVALSHA afterwards (EVAL only when the script cache was flushed)
    if (!(REGISTER_CMD in redis)) redis.defineCommand(REGISTER_CMD, { numberOfKeys: 3, lua: REGISTER_LUA });
  }

  private versionsKey(name: string): string {
    return `${this.prefix}:dllm-models:${name}:versions`;
  }
  private seqKey(name: string): string {
    return `${this.prefix}:dllm-models:${name}:seq`;
  }
  private latestKey(name: string): string {
    return `${this.prefix}:dllm-models:${name}:latest`;
  }
  get channel(): string {
    return `${this.prefix}:dllm-models`;
  }

  static checkNames(name: string, version: string): void {
    if (!NAME_RE.test(name)) throw new RangeError(`model name '${name.slice(0, 64)}' must be letters, digits, . _ - (1-64 chars)`);
    if (!VERSION_RE.test(version)) throw new RangeError(`version '${version.slice(0, 64)}' must be letters, digits, . _ + - (1-128 chars)`);
  }

  /**
   * Registers a new version (never replaces one: weights under one version must not change) and
   * announces it. Sequence assignment, the entry, `latest` and the announcement are one Lua script
   * (lua/register-version.lua), so concurrent registrations through several gateways publish in
   * sequence order and `latest` is always the highest sequence. Throws PolicyVersionConflict for an
   * existing version, RangeError for a bad name or version.
   */
  async register(name: string, version: string, dir: string): Promise<PolicyVersion> {
    PolicyRegistry.checkNames(name, version);
    const createdAt = Date.now();
    const seq = Number(
      await (this.redis as RegisteringRedis)[REGISTER_CMD](
        this.versionsKey(name),
        this.seqKey(name),
        this.latestKey(name),
        name,
        version,
        dir,
        String(createdAt),
        this.channel,
      ),
    );
    if (!seq) throw new PolicyVersionConflict(`model ${name} already has a version '${version}'; versions are immutable, register a new one`);
    return { name, version, seq, dir, createdAt };
  }

  async get(name: string, version: string): Promise<PolicyVersion | null> {
    const raw = await this.redis.hget(this.versionsKey(name), version);
    return raw ? (JSON.parse(raw) as PolicyVersion) : null;
  }

  async latest(name: string): Promise<PolicyVersion | null> {
    const v = await this.redis.get(this.latestKey(name));
    return v ? this.get(name, v) : null;
  }

  async list(name: string): Promise<PolicyVersion[]> {
    const all = await this.redis.hvals(this.versionsKey(name));
    return all.map((s) => JSON.parse(s) as PolicyVersion).sort((a, b) => a.seq - b.seq);
  }

  /** Sequence number of a version (0 when it was never registered, e.g. the model a worker booted with). */
  async seqOf(name: string, version: string): Promise<number> {
    return (await this.get(name, version))?.seq ?? 0;
  }

  /** Deletes a model's registry keys (tests, demos). */
  async drop(name: string): Promise<void> {
    await this.redis.del(this.versionsKey(name), this.seqKey(name), this.latestKey(name));
  }
}

export interface StalenessBound {
  requiredVersion?: string;
  maxStaleness?: number;
}

/**
 * Whether a sample produced by version seq `sampleSeq` breaks the bound: older than the required
 * version, or more than maxStaleness registered versions behind the newest.
 */
export function isStale(
  bound: StalenessBound | undefined,
  sampleSeq: number,
  latestSeq: number,
  requiredSeq: number | null,
): { stale: boolean; why: string | null } {
  if (!bound) return { stale: false, why: null };
  if (bound.requiredVersion !== undefined) {
    if (requiredSeq === null) return { stale: true, why: `required version ${bound.requiredVersion} is not registered` };
    if (sampleSeq < requiredSeq) return { stale: true, why: `produced by version #${sampleSeq}, older than the required #${requiredSeq}` };
  }
  if (bound.maxStaleness !== undefined && latestSeq - sampleSeq > bound.maxStaleness) {
    return { stale: true, why: `produced by version #${sampleSeq}, ${latestSeq - sampleSeq} behind the newest #${latestSeq} (bound ${bound.maxStaleness})` };
  }
  return { stale: false, why: null };
}

/**
 * Applies a staleness bound to records in place: `mark` sets stale; `reject` also turns the sample
 * into status 'failed' with error 'stale_policy: <why>'. Failed/aborted samples are left alone.
 * `seqOf` gives a version's registry sequence number (0 when never registered).
 */
export async function applyStaleness(
  records: Array<{ policy: { name: string; version: string }; status: string; stale: boolean; correct: boolean; error: string | null }>,
  bound: (StalenessBound & { onStale: 'mark' | 'reject' }) | undefined,
  seqOf: (name: string, version: string) => Promise<number> | number,
  latestSeq: number,
  requiredSeq: number | null,
): Promise<number> {
  if (!bound || (bound.requiredVersion === undefined && bound.maxStaleness === undefined)) return 0;
  const seqs = new Map<string, number>();
  let n = 0;
  for (const r of records) {
    if (r.status === 'failed' || r.status === 'aborted') continue;
    const k = `${r.policy.name}@${r.policy.version}`;
    let seq = seqs.get(k);
    if (seq === undefined) seqs.set(k, (seq = await seqOf(r.policy.name, r.policy.version)));
    const s = isStale(bound, seq, latestSeq, requiredSeq);
    if (!s.stale) continue;
    n++;
    r.stale = true;
    if (bound.onStale === 'reject') {
      r.status = 'failed';
      r.correct = false;
      r.error = `stale_policy: ${s.why}`;
    }
  }
  return n;
}
