// OpenAI Batch semantics on BullMQ. A batch is a small Redis hash (status, timestamps, counts);
// each request line is one generation job (jobId `<batchId>-<index>`, added with addBulk in chunks);
// each finished line is recorded once in a `done` hash (HSETNX, so every gateway replica can see
// the same QueueEvents and count each line once) with the job's small result reference; the output
// and error files are assembled in the file store (volume or bucket) when the batch finalizes.
//
// The input file is parsed once, by one parser (input.ts), at creation: each line's custom_id and
// model go to a `lines` hash, lines that fail validation are recorded as done with their reason
// (error file, never run). Finalization reads only those hashes, never the input file.
//
// Creation holds a lease (`batch:<id>:create`, renewed while it enqueues); the enqueue progress is
// in the hash. A gateway that dies mid-creation leaves its lease to expire, and the sweeper of any
// replica takes it over and resumes (deterministic job ids make re-adding a chunk a no-op), or marks
// the batch failed with the reason. Finalization runs under `batch:<id>:finalize`; a failing
// assembly is logged with its cause and retried with backoff, then reported as failed with the
// cause while the recorded lines are kept. One replica sweeps at a time (lease `batches:sweep`).
import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { Job } from 'bullmq';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { parseWindowSeconds, type Batch, type BatchEndpoint, type BatchOutputLine, type BatchStatus, type CreateBatchRequest } from '@dllm/contracts';
import { Lease, luaFile, withLease, withScripts } from '@dllm/queue';
import { ApiError } from '../http/api-error';
import { GenerationService, type Endpoint, type JobOutcome } from '../jobs/generation.service';
import { generationQueueName, settledSnapshot, type GenerationPayload } from '../jobs/catalogue-bridge';
import { chatBody, completionBody } from '../openai/render';
import type { GatewaySettings } from '../settings';
import { REDIS, SETTINGS } from '../tokens';
import { FileService, type FileWriter } from './file.service';
import { parseBatchInput, type InputRequest, type LineError } from './input';

const LINE_JOB = /^(batch_[0-9a-f]+)-(\d+)$/;
const CHUNK = 500;
const MIN_WINDOW_SECONDS = 3600;
/** Validation errors kept on the batch object (`errors`); every one is in the error file. */
const MAX_LISTED_ERRORS = 100;
/** Takeovers of an interrupted creation before the batch is marked failed. */
const MAX_CREATE_ATTEMPTS = 5;
/** Assembly attempts before the batch is reported failed (its recorded lines are kept). */
const MAX_FINALIZE_ATTEMPTS = 5;
const FINALIZE_LEASE_MS = 60_000;
/** A finalization with no retry scheduled and no lease holder for this long was interrupted. */
const STALE_FINALIZE_SECONDS = 120;

const LUA = {
  dllmBatchRecordLine: luaFile(`${__dirname}/lua`, 'batch-record-line', 2),
  dllmBatchTransition: luaFile(`${__dirname}/lua`, 'batch-transition', 1),
};

type Hash = Record<string, string>;
type Target = 'completed' | 'cancelled' | 'expired';
type StopCode = 'batch_cancelled' | 'batch_expired' | 'batch_failed';

@Injectable()
export class BatchService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Batches');
  private sweeper?: NodeJS.Timeout;
  private readonly onFinished = (jobId: string, outcome: JobOutcome) => {
    const m = LINE_JOB.exec(jobId);
    if (m) void this.onLineFinished(m[1], Number(m[2]), outcome).catch((e: Error) => this.logger.warn(`batch line ${jobId}: ${e.message}`));
  };

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
    private readonly gen: GenerationService,
    private readonly files: FileService,
  ) {}

  onModuleInit(): void {
    this.gen.events.on('finished', this.onFinished);
    // Watch every model's queue so line completions are counted even with no request waiting.
    for (const m of this.settings.models) void this.gen.watcher(m.name).catch((e: Error) => this.logger.warn(e.message));
    if (this.settings.batch.sweepMs > 0) {
      // While Redis is away the connection reporter has said so once; a sweep would only repeat it.
      const sweep = () => this.redis.status === 'ready' && void this.sweep().catch((e: Error) => this.logger.warn(`sweep: ${e.message}`));
      this.sweeper = setInterval(sweep, this.settings.batch.sweepMs);
      this.sweeper.unref();
    }
  }

  onModuleDestroy(): void {
    this.gen.events.off('finished', this.onFinished);
    if (this.sweeper) clearInterval(this.sweeper);
  }

  private get lua() {
    return withScripts(this.redis, LUA);
  }
  private k(id: string) {
    return `${this.settings.keyPrefix}batch:${id}`;
  }
  private done(id: string) {
    return `${this.settings.keyPrefix}batch:${id}:done`;
  }
  /** index -> JSON [custom_id | null, model | null], written at creation. */
  private linesKey(id: string) {
    return `${this.settings.keyPrefix}batch:${id}:lines`;
  }
  private createLeaseKey(id: string) {
    return `${this.settings.keyPrefix}batch:${id}:create`;
  }
  private finalizeLeaseKey(id: string) {
    return `${this.settings.keyPrefix}batch:${id}:finalize`;
  }
  private get activeKey() {
    return `${this.settings.keyPrefix}batches:active`;
  }
  private ownerKey(owner: string) {
    return `${this.settings.keyPrefix}batches:${owner}`;
  }
  /** How long a creation lease lives without renewal: the bound on how long a dead creator blocks its batch. */
  private get createLeaseMs() {
    return Math.max(10_000, this.settings.batch.sweepMs * 5);
  }

  // ---------------------------------------------------------------- create

  /** Parses the input with the one parser; each valid line's payload is built by the job catalogue (GenerationService.payload). */
  parseInput(owner: string, batchId: string, endpoint: BatchEndpoint, data: Buffer): Promise<InputRequest[]> {
    const ep: Endpoint = endpoint === '/v1/completions' ? 'completions' : 'chat.completions';
    return parseBatchInput(data, {
      endpoint,
      maxLines: this.settings.batch.maxLines,
      payload: (l) =>
        this.gen.payload({
          owner,
          model: l.model,
          prompt: l.prompt,
          options: l.options,
          endpoint: ep,
          stream: false,
          batch: { batchId, customId: l.customId, line: l.index },
        }),
    });
  }

  async create(owner: string, req: CreateBatchRequest): Promise<Batch> {
    const windowSeconds = parseWindowSeconds(req.completion_window);
    if (windowSeconds < MIN_WINDOW_SECONDS && !this.settings.batch.allowShortWindows) {
      throw new ApiError(422, `completion_window must be at least 1h (got ${req.completion_window}).`, 'invalid_value', 'completion_window');
    }
    const file = await this.files.get(owner, req.input_file_id);
    if (file.purpose !== 'batch') throw new ApiError(422, `File ${file.id} has purpose '${file.purpose}', not 'batch'.`, 'invalid_value', 'input_file_id');
    const id = `batch_${randomBytes(12).toString('hex')}`;
    const requests = await this.parseInput(owner, id, req.endpoint, await this.files.read(owner, file.id));
    const invalid = requests.filter((r) => r.error);
    if (invalid.length === requests.length) {
      // Nothing would run: refuse the file instead of creating a batch of errors.
      const msgs = invalid.slice(0, 10).map((r) => r.error!.message);
      const more = invalid.length > 10 ? ` (and ${invalid.length - 10} more)` : '';
      throw new ApiError(422, `The input file has no valid request: ${msgs.join(' | ')}${more}`, 'invalid_input_file', 'input_file_id');
    }
    const lease = (await Lease.acquire(this.redis, this.createLeaseKey(id), this.createLeaseMs))!; // a fresh id: always free
    lease.startRenewing();
    try {
      const now = Math.floor(Date.now() / 1000);
      await this.redis
        .multi()
        .hset(this.k(id), {
          owner,
          endpoint: req.endpoint,
          input_file_id: file.id,
          completion_window: req.completion_window,
          status: 'validating',
          stage: 'storing',
          enqueued: '0',
          created_at: String(now),
          expires_at: String(now + windowSeconds),
          total: String(requests.length),
          completed: '0',
          failed: '0',
          metadata: JSON.stringify(req.metadata ?? null),
          last_event_at: String(Date.now()),
        })
        .zadd(this.activeKey, now + windowSeconds, id)
        .zadd(this.ownerKey(owner), now, id)
        .exec();
      await this.storeIndex(id, requests);
      await this.enqueue(id, requests, lease, 0);
      await this.transition(id, 'in_progress', 'in_progress_at', ['validating']);
    } finally {
      await lease.release().catch(() => false);
    }
    return this.get(owner, id);
  }

  /** Writes the line index and records the invalid lines (idempotent: a resumed creation repeats it). */
  private async storeIndex(id: string, requests: InputRequest[]): Promise<void> {
    for (let s = 0; s < requests.length; s += 1000) {
      const slice = requests.slice(s, s + 1000);
      await this.redis.hset(this.linesKey(id), Object.fromEntries(slice.map((r) => [String(r.index), JSON.stringify([r.customId, r.model])])));
    }
    const invalid = requests.filter((r) => r.error);
    for (const r of invalid) await this.record(id, r.index, `e${JSON.stringify(r.error)}`, 'failed');
    const listed = invalid.slice(0, MAX_LISTED_ERRORS).map((r) => ({ ...r.error!, line: r.lineNo }));
    await this.redis.hset(this.k(id), 'errors', JSON.stringify(listed), 'stage', 'enqueuing');
  }

  /**
   * Enqueues the valid lines from request index `from`, one chunk at a time, recording progress in
   * the hash (`enqueued`). Lines already recorded (e.g. cancelled meanwhile) are skipped; re-adding
   * a job id that exists is a no-op in BullMQ. Stops when the batch left `validating` or the lease is lost.
   */
  private async enqueue(id: string, requests: InputRequest[], lease: Lease, from: number): Promise<void> {
    for (let start = from; start < requests.length; start += CHUNK) {
      if (!lease.held) throw new Error(`batch ${id}: creation lease lost while enqueuing`);
      if ((await this.redis.hget(this.k(id), 'status')) !== 'validating') return;
      const chunk = requests.slice(start, start + CHUNK).filter((r) => r.payload);
      const recorded = chunk.length ? await this.redis.hmget(this.done(id), ...chunk.map((r) => String(r.index))) : [];
      const byModel = new Map<string, { jobId: string; payload: GenerationPayload }[]>();
      chunk.forEach((r, j) => {
        if (recorded[j] !== null) return;
        const list = byModel.get(r.payload!.model) ?? [];
        list.push({ jobId: `${id}-${r.index}`, payload: r.payload! });
        byModel.set(r.payload!.model, list);
      });
      for (const [model, jobs] of byModel) await this.gen.submitBulk(model, jobs);
      await this.redis.hset(this.k(id), 'enqueued', String(Math.min(requests.length, start + CHUNK)));
    }
  }

  /**
   * Takes over a creation whose gateway died (its lease expired): re-reads the input with the same
   * parser and enqueues what was not enqueued yet; after MAX_CREATE_ATTEMPTS, or when the input is
   * gone, the batch fails with the reason.
   */
  private async resumeCreation(id: string): Promise<void> {
    await withLease(
      this.redis,
      this.createLeaseKey(id),
      this.createLeaseMs,
      async (lease) => {
        const h = await this.redis.hgetall(this.k(id));
        if (h.status !== 'validating') return;
        const attempt = await this.redis.hincrby(this.k(id), 'create_attempts', 1);
        if (attempt > MAX_CREATE_ATTEMPTS) return this.failCreation(id, h, `creation was interrupted ${MAX_CREATE_ATTEMPTS} times`);
        this.logger.warn(`batch ${id}: resuming an interrupted creation (attempt ${attempt}, ${h.enqueued ?? 0}/${h.total} lines enqueued)`);
        let requests: InputRequest[];
        try {
          requests = await this.parseInput(h.owner, id, h.endpoint as BatchEndpoint, await this.files.read(h.owner, h.input_file_id));
        } catch (e) {
          return this.failCreation(id, h, `the input file can no longer be read (${(e as Error).message})`);
        }
        if (requests.length !== Number(h.total))
          return this.failCreation(id, h, `the input file changed (${requests.length} requests, ${h.total} at creation)`);
        if (h.stage !== 'enqueuing') await this.storeIndex(id, requests);
        await this.enqueue(id, requests, lease, Number(h.enqueued ?? 0));
        if (await this.transition(id, 'in_progress', 'in_progress_at', ['validating'])) this.logger.log(`batch ${id}: creation resumed and complete`);
      },
      { release: true },
    );
  }

  /** A creation that cannot complete: stop what was enqueued, status failed, the reason in `errors`. */
  private async failCreation(id: string, h: Hash, reason: string): Promise<void> {
    this.logger.error(`batch ${id}: creation failed: ${reason}`);
    if (!(await this.transition(id, 'failed', 'failed_at', ['validating']))) return;
    const listed = JSON.parse(h.errors || '[]') as unknown[];
    await this.redis.hset(this.k(id), 'errors', JSON.stringify([{ code: 'creation_failed', message: reason, param: null, line: null }, ...listed]));
    await this.stopLines(id, h, 'batch_failed', true);
    await this.retire(id, h.owner);
  }

  // ---------------------------------------------------------------- read

  private async hash(owner: string, id: string): Promise<Hash> {
    const h = await this.redis.hgetall(this.k(id));
    if (!h.owner || h.owner !== owner) throw ApiError.notFound('batch', id);
    return h;
  }

  async get(owner: string, id: string): Promise<Batch> {
    return this.view(id, await this.hash(owner, id));
  }

  async list(owner: string, limit: number): Promise<Batch[]> {
    const ids = await this.redis.zrevrange(this.ownerKey(owner), 0, limit - 1);
    const out: Batch[] = [];
    for (const id of ids) {
      const h = await this.redis.hgetall(this.k(id));
      if (h.owner === owner) out.push(this.view(id, h));
      else await this.redis.zrem(this.ownerKey(owner), id);
    }
    return out;
  }

  private view(id: string, h: Hash): Batch {
    const ts = (f: string) => (h[f] ? Number(h[f]) : null);
    const visible = h.status === 'finalizing' && h.target ? 'finalizing' : h.status;
    const errors = h.errors ? (JSON.parse(h.errors) as NonNullable<Batch['errors']>['data']) : [];
    return {
      id,
      object: 'batch',
      endpoint: h.endpoint,
      errors: errors.length ? { object: 'list', data: errors } : null,
      input_file_id: h.input_file_id,
      completion_window: h.completion_window,
      status: visible as BatchStatus,
      output_file_id: h.output_file_id || null,
      error_file_id: h.error_file_id || null,
      created_at: Number(h.created_at),
      in_progress_at: ts('in_progress_at'),
      expires_at: ts('expires_at'),
      finalizing_at: ts('finalizing_at'),
      completed_at: ts('completed_at'),
      failed_at: ts('failed_at'),
      expired_at: ts('expired_at'),
      cancelling_at: ts('cancelling_at'),
      cancelled_at: ts('cancelled_at'),
      request_counts: { total: Number(h.total), completed: Number(h.completed), failed: Number(h.failed) },
      metadata: h.metadata ? (JSON.parse(h.metadata) as Record<string, string> | null) : null,
    };
  }

  // ---------------------------------------------------------------- lines

  private async transition(id: string, to: string, field: string, from: string[]): Promise<boolean> {
    const r = await this.lua.dllmBatchTransition(this.k(id), to, field, String(Math.floor(Date.now() / 1000)), ...from);
    return r === 1;
  }

  /** Records one line's outcome once; finalizes the batch when it was the last one. */
  async record(batchId: string, line: number, value: string, counter: 'completed' | 'failed' | ''): Promise<void> {
    const r = await this.lua.dllmBatchRecordLine(this.k(batchId), this.done(batchId), String(line), value, counter, String(Date.now()));
    if (r === 1) await this.finalize(batchId);
  }

  private async onLineFinished(batchId: string, line: number, o: JobOutcome): Promise<void> {
    if (o.failedReason !== undefined) return this.record(batchId, line, `f${o.failedReason}`.slice(0, 2000), 'failed');
    const rv = typeof o.returnvalue === 'string' ? o.returnvalue : JSON.stringify(o.returnvalue ?? null);
    // A line stopped by a batch cancel/expiry before its first token has nothing to keep: report it
    // as cancelled (error file), not as an empty completion.
    try {
      const sum = JSON.parse(rv) as { finishReason?: string; usage?: { completionTokens?: number } };
      if (sum?.finishReason === 'cancelled' && !sum.usage?.completionTokens) {
        const expiring = await this.redis.hget(this.k(batchId), 'expiring');
        return this.record(batchId, line, expiring ? 'xbatch_expired' : 'xbatch_cancelled', '');
      }
    } catch {
      /* not a summary; keep it as is */
    }
    return this.record(batchId, line, `o${rv}`, 'completed');
  }

  /** Lines not yet recorded, with their job's state (batched round trips). */
  private async pendingLines(id: string, h: Hash): Promise<{ line: number; job?: Job; state: string }[]> {
    const total = Number(h.total);
    const done = new Set((await this.redis.hkeys(this.done(id))).map(Number));
    const pending: number[] = [];
    for (let i = 0; i < total; i++) if (!done.has(i)) pending.push(i);
    const out: { line: number; job?: Job; state: string }[] = [];
    for (let s = 0; s < pending.length; s += 100) {
      const slice = pending.slice(s, s + 100);
      const got = await Promise.all(
        slice.map(async (line) => {
          const jobId = `${id}-${line}`;
          for (const m of this.settings.models) {
            const q = this.gen.queue(m.name);
            const read = await Job.fromId(q, jobId);
            if (read) return { line, ...(await settledSnapshot(q, read)) };
          }
          return { line, state: 'missing' };
        }),
      );
      out.push(...got);
    }
    return out;
  }

  /** Catches up on lines whose completion events this gateway missed. */
  async reconcile(id: string, h: Hash): Promise<void> {
    for (const p of await this.pendingLines(id, h)) {
      if (p.state === 'completed') await this.onLineFinished(id, p.line, { returnvalue: p.job!.returnvalue });
      else if (p.state === 'failed') await this.onLineFinished(id, p.line, { failedReason: p.job!.failedReason ?? 'failed' });
      else if (p.state === 'missing') await this.record(id, p.line, 'xjob_lost', 'failed');
    }
  }

  /** Removes lines that have not started and signals the running ones. */
  private async stopLines(id: string, h: Hash, code: StopCode, markActive: boolean): Promise<void> {
    const stopOne = async (p: { line: number; job?: Job; state: string }) => {
      if (p.state === 'active') {
        await this.gen.signalCancel(p.job!.queueName ?? generationQueueName(p.job!.data.model), p.job!.id!);
        if (markActive) await this.record(id, p.line, `x${code}`, '');
        return;
      }
      if (p.state === 'completed' || p.state === 'failed') {
        await this.onLineFinished(id, p.line, p.state === 'completed' ? { returnvalue: p.job!.returnvalue } : { failedReason: p.job!.failedReason });
        return;
      }
      if (p.job) {
        try {
          await p.job.remove();
        } catch {
          // picked up by a worker in between: signal it instead
          await this.gen.signalCancel(p.job.queueName, p.job.id!);
          if (!markActive) return;
        }
      }
      await this.record(id, p.line, `x${code}`, '');
    };
    const pending = await this.pendingLines(id, h);
    // Lines are independent: stop them 100 at a time (each is a few small round trips).
    for (let s = 0; s < pending.length; s += 100) await Promise.all(pending.slice(s, s + 100).map(stopOne));
  }

  // ---------------------------------------------------------------- cancel / expire / finalize

  async cancel(owner: string, id: string): Promise<Batch> {
    const h = await this.hash(owner, id);
    if (['completed', 'failed', 'expired', 'cancelled', 'cancelling', 'finalizing'].includes(h.status)) {
      if (h.status === 'cancelling' || h.status === 'cancelled') return this.view(id, h);
      throw new ApiError(409, `Batch ${id} is ${h.status}; only a validating or in_progress batch can be cancelled.`, 'batch_not_cancellable');
    }
    if (await this.transition(id, 'cancelling', 'cancelling_at', ['validating', 'in_progress'])) {
      await this.stopLines(id, h, 'batch_cancelled', false);
      const after = await this.redis.hgetall(this.k(id));
      if (Number(await this.redis.hlen(this.done(id))) >= Number(after.total)) await this.finalize(id);
    }
    // The cancel's own answer says the batch is being cancelled: when its last line finished on a worker
    // at the same moment, that line's event may be assembling the files (status 'finalizing', target
    // cancelled) while this call returns; GET shows the assembly as it runs.
    const b = await this.get(owner, id);
    return b.status === 'finalizing' ? { ...b, status: 'cancelling' } : b;
  }

  private async expire(id: string, h: Hash): Promise<void> {
    // Unfinished lines become batch_expired (running ones are signalled and marked now), then finalize.
    await this.redis.hset(this.k(id), 'expiring', '1');
    await this.stopLines(id, h, 'batch_expired', true);
    await this.finalize(id, true);
  }

  /** Moves the batch to finalizing (one replica wins) and assembles its files. */
  async finalize(id: string, expired = false): Promise<void> {
    const h0 = await this.redis.hgetall(this.k(id));
    const target: Target = expired || h0.expiring ? 'expired' : h0.status === 'cancelling' ? 'cancelled' : 'completed';
    if (!(await this.transition(id, 'finalizing', 'finalizing_at', ['validating', 'in_progress', 'cancelling']))) return;
    await this.redis.hset(this.k(id), 'target', target);
    await this.assembleOnce(id);
  }

  /**
   * One assembly attempt under the batch's finalize lease (skipped while another replica holds it).
   * A failure is logged with its cause and retried by the sweeper with backoff (1 s, 2 s, 4 s, ...);
   * after MAX_FINALIZE_ATTEMPTS the batch is failed with the cause in `errors`, and its recorded
   * lines stay readable until retention ends.
   */
  private async assembleOnce(id: string): Promise<void> {
    await withLease(
      this.redis,
      this.finalizeLeaseKey(id),
      FINALIZE_LEASE_MS,
      async () => {
        const h = await this.redis.hgetall(this.k(id));
        if (h.status !== 'finalizing') return;
        try {
          await this.assemble(id, h, (h.target || 'completed') as Target);
        } catch (e) {
          const err = e as Error;
          const attempt = await this.redis.hincrby(this.k(id), 'finalize_attempts', 1);
          this.logger.error(`batch ${id}: assembling the output files failed (attempt ${attempt}/${MAX_FINALIZE_ATTEMPTS}): ${err.message}`, err.stack);
          if (attempt < MAX_FINALIZE_ATTEMPTS) {
            await this.redis.hset(this.k(id), 'finalize_retry_at', String(Date.now() + 1000 * 2 ** (attempt - 1)), 'finalize_error', err.message.slice(0, 500));
            return;
          }
          const listed = JSON.parse(h.errors || '[]') as unknown[];
          const message = `The output files could not be written after ${attempt} attempts (${err.message.slice(0, 300)}); ${h.completed} completed line(s) stay recorded until retention ends.`;
          await this.redis.hset(
            this.k(id),
            'status',
            'failed',
            'failed_at',
            String(Math.floor(Date.now() / 1000)),
            'errors',
            JSON.stringify([{ code: 'finalization_failed', message, param: null, line: null }, ...listed]),
          );
          await this.retire(id, h.owner);
        }
      },
      { release: true },
    );
  }

  /** Builds the output and error files from the line index and the done hash (never from the input file). */
  private async assemble(id: string, h: Hash, target: Target): Promise<void> {
    const owner = h.owner;
    const total = Number(h.total);
    const outId = this.files.newId();
    const errId = this.files.newId();
    // Both files are streamed into the file store line by line (large batches never sit in memory).
    const out = this.files.writer(outId);
    const err = this.files.writer(errId);
    const write = (s: FileWriter, line: BatchOutputLine) => s.write(`${JSON.stringify(line)}\n`);
    let outBytes: number;
    let errBytes: number;
    try {
      const chat = h.endpoint === '/v1/chat/completions';
      for (let s = 0; s < total; s += 64) {
        const idx = Array.from({ length: Math.min(64, total - s) }, (_, j) => String(s + j));
        const [meta, done] = await Promise.all([this.redis.hmget(this.linesKey(id), ...idx), this.redis.hmget(this.done(id), ...idx)]);
        const lines = await Promise.all(
          idx.map(async (i, j): Promise<[boolean, BatchOutputLine]> => {
            const jobId = `${id}-${i}`;
            const [customId, model] = meta[j] ? (JSON.parse(meta[j]!) as [string | null, string | null]) : [null, null];
            const v = done[j];
            const base = { id: `batch_req_${jobId}`, custom_id: customId };
            if (v?.startsWith('o')) {
              try {
                const r = await this.gen.readResult(jobId, JSON.parse(v.slice(1)));
                const m = r.model?.name ?? model ?? '';
                const body = chat ? chatBody(jobId, m, r) : completionBody(jobId, m, r);
                return [true, { ...base, response: { status_code: 200, request_id: jobId, body }, error: null }];
              } catch (e) {
                return [false, { ...base, response: null, error: { code: 'result_unavailable', message: (e as Error).message } }];
              }
            }
            if (v?.startsWith('f'))
              return [
                false,
                {
                  ...base,
                  response: {
                    status_code: 500,
                    request_id: jobId,
                    body: { error: { message: v.slice(1), type: 'server_error', param: null, code: 'generation_failed' } },
                  },
                  error: null,
                },
              ];
            if (v?.startsWith('e')) {
              const e = JSON.parse(v.slice(1)) as LineError;
              return [false, { ...base, response: null, error: { code: e.code, message: e.param ? `${e.message} (param: ${e.param})` : e.message } }];
            }
            const code = v?.startsWith('x') ? v.slice(1) : target === 'expired' ? 'batch_expired' : 'batch_cancelled';
            const message =
              code === 'batch_expired'
                ? 'This request could not be executed before the completion window expired.'
                : code === 'job_lost'
                  ? 'The job for this request disappeared from the queue (retention or manual removal).'
                  : code === 'batch_failed'
                    ? 'The batch failed before this request ran.'
                    : 'The batch was cancelled before this request ran.';
            return [false, { ...base, response: null, error: { code, message } }];
          }),
        );
        for (const [ok, line] of lines) await write(ok ? out : err, line);
      }
      [outBytes, errBytes] = await Promise.all([out.end(), err.end()]);
    } catch (e) {
      // Nothing half-written stays in the store (a file that did finish goes too: it is not registered).
      await Promise.all([out.abort(e as Error), err.abort(e as Error)]);
      await Promise.all([this.files.discard(outId), this.files.discard(errId)]).catch(() => undefined);
      throw e;
    }
    const fields: string[] = [];
    if (outBytes > 0) {
      await this.files.register(owner, outId, `${id}_output.jsonl`, 'batch_output', outBytes);
      fields.push('output_file_id', outId);
    } else await this.files.discard(outId);
    if (errBytes > 0) {
      await this.files.register(owner, errId, `${id}_error.jsonl`, 'batch_output', errBytes);
      fields.push('error_file_id', errId);
    } else await this.files.discard(errId);
    const now = String(Math.floor(Date.now() / 1000));
    await this.redis
      .multi()
      .hset(this.k(id), ...fields, 'status', target, `${target}_at`, now)
      .hdel(this.k(id), 'target', 'finalize_retry_at', 'finalize_error')
      .exec();
    await this.retire(id, owner);
  }

  /** A batch that reached a final status: off the active set, its keys expire after retention. */
  private async retire(id: string, owner: string): Promise<void> {
    const ttl = this.settings.retentionSeconds;
    await this.redis
      .multi()
      .zrem(this.activeKey, id)
      .expire(this.k(id), ttl)
      .expire(this.done(id), ttl)
      .expire(this.linesKey(id), ttl)
      .expire(this.ownerKey(owner), ttl)
      .exec();
  }

  /**
   * One replica at a time (a renewed lease): resume interrupted creations, expire overdue batches,
   * retry or resume finalizations, finish stuck cancels, catch up missed events.
   */
  async sweep(): Promise<void> {
    const key = `${this.settings.keyPrefix}batches:sweep`;
    await withLease(this.redis, key, Math.max(5000, this.settings.batch.sweepMs * 5), () => this.sweepOnce(), { release: true });
  }

  private async sweepOnce(): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    const ids = await this.redis.zrange(this.activeKey, 0, 199);
    for (const id of ids) {
      try {
        const h = await this.redis.hgetall(this.k(id));
        if (!h.status) {
          await this.redis.zrem(this.activeKey, id);
          continue;
        }
        if (['validating', 'in_progress', 'cancelling'].includes(h.status) && Number(h.expires_at) <= now) {
          await this.expire(id, h);
        } else if (h.status === 'validating') {
          // A live creator holds the lease (renewed); a dead one's lease expires and this takes over.
          await this.resumeCreation(id);
        } else if (h.status === 'finalizing') {
          const retryAt = Number(h.finalize_retry_at || 0);
          if ((retryAt && Date.now() >= retryAt) || (!retryAt && Number(h.finalizing_at) < now - STALE_FINALIZE_SECONDS)) await this.assembleOnce(id);
        } else if (['in_progress', 'cancelling'].includes(h.status) && Date.now() - Number(h.last_event_at) > 15_000) {
          await this.reconcile(id, h);
          await this.redis.hset(this.k(id), 'last_event_at', String(Date.now()));
          if (h.status === 'cancelling' && Number(h.cancelling_at) < now - 120) {
            await this.stopLines(id, h, 'batch_cancelled', true);
            await this.finalize(id);
          }
        }
      } catch (e) {
        this.logger.warn(`sweep ${id}: ${(e as Error).message}`); // one batch's trouble does not stop the others
      }
    }
    await this.files.sweep();
  }
}
