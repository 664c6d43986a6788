// OpenAI Batch semantics on BullMQ. A batch is a small Redis hash (status, timestamps, counts);
// each input line is one generation job (jobId `<batchId>-<line>`, added with addBulk in chunks);
// each finished line is recorded once in a `done` hash (HSETNX, so every gateway replica can see
// the same QueueEvents and count each line once) with the job's small result reference; the output
// and error files are assembled in the file store (volume or bucket) when the batch finalizes. A sweeper (one
// replica at a time, via a Redis lock) handles expiry, stuck cancels and events missed while no
// gateway was listening.
import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { Job } from 'bullmq';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  batchInputLineSchema,
  chatCompletionRequestSchema,
  completionRequestSchema,
  parseWindowSeconds,
  renderChatPrompt,
  type Batch,
  type BatchOutputLine,
  type BatchStatus,
  type CreateBatchRequest,
} from '@dllm/contracts';
import { ApiError } from '../http/api-error';
import { GenerationService, type Endpoint } from '../jobs/generation.service';
import { generationQueueName, settledSnapshot, type GenerationPayload } from '../jobs/catalogue-bridge';
import { chatBody, completionBody } from '../openai/completions.controller';
import { engineOptions } from '../openai/options';
import type { GatewaySettings } from '../settings';
import { REDIS, SETTINGS } from '../tokens';
import { FileService, type FileWriter } from './file.service';

const LINE_JOB = /^(batch_[0-9a-f]+)-(\d+)$/;
const CHUNK = 500;
const MIN_WINDOW_SECONDS = 3600;

// KEYS: batch hash, done hash. ARGV: line, value, counter field ('' for none), now. Returns
// -1 unknown batch, -2 already recorded, 0 recorded, 1 recorded and every line is done.
const RECORD_LINE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return -2 end
if ARGV[3] ~= '' then redis.call('HINCRBY', KEYS[1], ARGV[3], 1) end
redis.call('HSET', KEYS[1], 'last_event_at', ARGV[4])
if redis.call('HLEN', KEYS[2]) >= tonumber(redis.call('HGET', KEYS[1], 'total')) then return 1 end
return 0`;

// KEYS: batch hash. ARGV: new status, timestamp field, now, allowed current statuses...
const TRANSITION = `
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 0 end
for i = 4, #ARGV do
  if cur == ARGV[i] then
    redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[2], ARGV[3])
    return 1
  end
end
return 0`;

interface InputLine {
  customId: string;
  model: string;
  prompt: string;
  options: Record<string, unknown>;
}

type Hash = Record<string, string>;

@Injectable()
export class BatchService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Batches');
  private sweeper?: NodeJS.Timeout;
  private readonly instance = randomBytes(6).toString('hex');

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
    private readonly gen: GenerationService,
    private readonly files: FileService,
  ) {}

  onModuleInit(): void {
    this.gen.onFinished = (jobId, outcome) => {
      const m = LINE_JOB.exec(jobId);
      if (m) void this.onLineFinished(m[1], Number(m[2]), outcome).catch((e: Error) => this.logger.warn(`batch line ${jobId}: ${e.message}`));
    };
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
    if (this.sweeper) clearInterval(this.sweeper);
  }

  private k(id: string) {
    return `${this.settings.keyPrefix}batch:${id}`;
  }
  private done(id: string) {
    return `${this.settings.keyPrefix}batch:${id}:done`;
  }
  private get activeKey() {
    return `${this.settings.keyPrefix}batches:active`;
  }
  private ownerKey(owner: string) {
    return `${this.settings.keyPrefix}batches:${owner}`;
  }

  // ---------------------------------------------------------------- create

  /** Parses and checks every line of an input file; 422 listing the first problems. */
  parseInput(owner: string, endpoint: Endpoint | '/v1/completions' | '/v1/chat/completions', data: Buffer): InputLine[] {
    const text = data.toString('utf8');
    const rawLines = text.split('\n');
    const errors: string[] = [];
    const out: InputLine[] = [];
    const seen = new Set<string>();
    const ep = endpoint === '/v1/chat/completions' ? '/v1/chat/completions' : '/v1/completions';
    for (let i = 0; i < rawLines.length; i++) {
      const raw = rawLines[i].trim();
      if (!raw) continue;
      if (out.length + errors.length >= this.settings.batch.maxLines) {
        throw new ApiError(422, `The input file has more than ${this.settings.batch.maxLines} requests (BATCH_MAX_LINES).`, 'too_many_lines', 'input_file_id');
      }
      const err = (msg: string) => errors.push(`line ${i + 1}: ${msg}`);
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch (e) {
        err(`invalid JSON (${(e as Error).message})`);
        continue;
      }
      const line = batchInputLineSchema.safeParse(json);
      if (!line.success) {
        err(line.error.issues.map((x) => `${x.path.join('.') || 'line'}: ${x.message}`).join('; '));
        continue;
      }
      const { custom_id, url, body } = line.data;
      if (url !== ep) {
        err(`url '${url}' differs from the batch endpoint '${ep}'`);
        continue;
      }
      if (seen.has(custom_id)) {
        err(`duplicate custom_id '${custom_id}'`);
        continue;
      }
      seen.add(custom_id);
      const parsed = (ep === '/v1/completions' ? completionRequestSchema : chatCompletionRequestSchema).safeParse(body);
      if (!parsed.success) {
        err(parsed.error.issues.map((x) => `body.${x.path.join('.')}: ${x.message}`).join('; '));
        continue;
      }
      const b = parsed.data as Record<string, unknown> & { model: string; stream?: boolean | null };
      if (b.stream) {
        err('stream: true is not allowed in a batch');
        continue;
      }
      const prompt =
        'messages' in parsed.data ? renderChatPrompt(parsed.data.messages) : Array.isArray(parsed.data.prompt) ? parsed.data.prompt[0] : parsed.data.prompt;
      const options = engineOptions(b);
      try {
        this.gen.payload({ owner, model: b.model, prompt, options, endpoint: ep === '/v1/completions' ? 'completions' : 'chat.completions', stream: false });
      } catch (e) {
        err(e instanceof ApiError ? e.message : String(e));
        continue;
      }
      out.push({ customId: custom_id, model: b.model, prompt, options });
    }
    if (errors.length) {
      const more = errors.length > 10 ? ` (and ${errors.length - 10} more)` : '';
      throw new ApiError(422, `The input file has ${errors.length} invalid line(s): ${errors.slice(0, 10).join(' | ')}${more}`, 'invalid_input_file', 'input_file_id');
    }
    if (!out.length) throw new ApiError(422, 'The input file has no requests.', 'empty_file', 'input_file_id');
    return out;
  }

  async create(owner: string, req: CreateBatchRequest): Promise<Batch> {
    const windowSeconds = parseWindowSeconds(req.completion_window);
    if (windowSeconds < MIN_WINDOW_SECONDS && !this.settings.batch.allowShortWindows) {
      throw new ApiError(422, `completion_window must be at least 1h (got ${req.completion_window}).`, 'invalid_value', 'completion_window');
    }
    const file = await this.files.get(owner, req.input_file_id);
    if (file.purpose !== 'batch') throw new ApiError(422, `File ${file.id} has purpose '${file.purpose}', not 'batch'.`, 'invalid_value', 'input_file_id');
    const lines = this.parseInput(owner, req.endpoint, await this.files.read(owner, file.id));
    const id = `batch_${randomBytes(12).toString('hex')}`;
    const now = Math.floor(Date.now() / 1000);
    const endpoint: Endpoint = req.endpoint === '/v1/completions' ? 'completions' : 'chat.completions';
    await this.redis
      .multi()
      .hset(this.k(id), {
        owner,
        endpoint: req.endpoint,
        input_file_id: file.id,
        completion_window: req.completion_window,
        status: 'validating',
        created_at: String(now),
        expires_at: String(now + windowSeconds),
        total: String(lines.length),
        completed: '0',
        failed: '0',
        metadata: JSON.stringify(req.metadata ?? null),
        last_event_at: String(Date.now()),
      })
      .zadd(this.activeKey, now + windowSeconds, id)
      .zadd(this.ownerKey(owner), now, id)
      .exec();
    const createdAt = Date.now();
    for (let start = 0; start < lines.length; start += CHUNK) {
      const byModel = new Map<string, { jobId: string; payload: GenerationPayload }[]>();
      for (let i = start; i < Math.min(lines.length, start + CHUNK); i++) {
        const l = lines[i];
        const payload: GenerationPayload = {
          owner,
          model: l.model,
          prompt: l.prompt,
          options: l.options,
          stream: false,
          endpoint,
          createdAt,
          batch: { batchId: id, customId: l.customId, line: i },
        } as GenerationPayload;
        const list = byModel.get(l.model) ?? [];
        list.push({ jobId: `${id}-${i}`, payload });
        byModel.set(l.model, list);
      }
      for (const [model, jobs] of byModel) await this.gen.submitBulk(model, jobs);
    }
    await this.transition(id, 'in_progress', 'in_progress_at', ['validating']);
    return this.get(owner, id);
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
    return {
      id,
      object: 'batch',
      endpoint: h.endpoint,
      errors: null,
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
    const r = await this.redis.eval(TRANSITION, 1, this.k(id), to, field, String(Math.floor(Date.now() / 1000)), ...from);
    return r === 1;
  }

  /** Records one line's outcome once; finalizes the batch when it was the last one. */
  async record(batchId: string, line: number, value: string, counter: 'completed' | 'failed' | ''): Promise<void> {
    const r = await this.redis.eval(RECORD_LINE, 2, this.k(batchId), this.done(batchId), String(line), value, counter, String(Date.now()));
    if (r === 1) await this.finalize(batchId);
  }

  private async onLineFinished(batchId: string, line: number, o: { returnvalue?: unknown; failedReason?: string }): Promise<void> {
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
  private async stopLines(id: string, h: Hash, code: 'batch_cancelled' | 'batch_expired', markActive: boolean): Promise<void> {
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
    return this.get(owner, id);
  }

  private async expire(id: string, h: Hash): Promise<void> {
    // Unfinished lines become batch_expired (running ones are signalled and marked now), then finalize.
    await this.redis.hset(this.k(id), 'expiring', '1');
    await this.stopLines(id, h, 'batch_expired', true);
    await this.finalize(id, true);
  }

  /** Assembles output/error files once (one replica wins the status transition). */
  async finalize(id: string, expired = false): Promise<void> {
    const h0 = await this.redis.hgetall(this.k(id));
    const target = expired || h0.expiring ? 'expired' : h0.status === 'cancelling' ? 'cancelled' : 'completed';
    if (!(await this.transition(id, 'finalizing', 'finalizing_at', ['validating', 'in_progress', 'cancelling']))) return;
    await this.redis.hset(this.k(id), 'target', target);
    try {
      await this.assemble(id, target);
    } catch (e) {
      this.logger.error(`finalize ${id}: ${(e as Error).message}`);
      await this.redis.hset(this.k(id), 'status', 'failed', 'failed_at', String(Math.floor(Date.now() / 1000)));
      return;
    }
  }

  private async assemble(id: string, target: 'completed' | 'cancelled' | 'expired'): Promise<void> {
    const h = await this.redis.hgetall(this.k(id));
    const owner = h.owner;
    const input = await this.files.read(owner, h.input_file_id);
    const customIds: string[] = [];
    const models: string[] = [];
    for (const raw of input.toString('utf8').split('\n')) {
      if (!raw.trim()) continue;
      const l = JSON.parse(raw) as { custom_id: string; body?: { model?: string } };
      customIds.push(l.custom_id);
      models.push(l.body?.model ?? '');
    }
    const done = await this.redis.hgetall(this.done(id));
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
      for (let s = 0; s < customIds.length; s += 64) {
        const idx = customIds.slice(s, s + 64).map((_, j) => s + j);
        const lines = await Promise.all(
          idx.map(async (i): Promise<[boolean, BatchOutputLine]> => {
            const jobId = `${id}-${i}`;
            const v = done[String(i)];
            const base = { id: `batch_req_${jobId}`, custom_id: customIds[i] };
            if (v?.startsWith('o')) {
              try {
                const r = await this.gen.readResult(jobId, JSON.parse(v.slice(1)));
                const m = r.model?.name ?? models[i];
                const body = chat ? chatBody(jobId, m, r) : completionBody(jobId, m, r);
                return [true, { ...base, response: { status_code: 200, request_id: jobId, body }, error: null }];
              } catch (e) {
                return [false, { ...base, response: null, error: { code: 'result_unavailable', message: (e as Error).message } }];
              }
            }
            if (v?.startsWith('f')) return [false, { ...base, response: { status_code: 500, request_id: jobId, body: { error: { message: v.slice(1), type: 'server_error', param: null, code: 'generation_failed' } } }, error: null }];
            const code = v?.startsWith('x') ? v.slice(1) : target === 'expired' ? 'batch_expired' : 'batch_cancelled';
            const message =
              code === 'batch_expired'
                ? 'This request could not be executed before the completion window expired.'
                : code === 'job_lost'
                  ? 'The job for this request disappeared from the queue (retention or manual removal).'
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
    const ttl = this.settings.retentionSeconds;
    await this.redis
      .multi()
      .hset(this.k(id), ...fields, 'status', target, `${target}_at`, now)
      .hdel(this.k(id), 'target')
      .zrem(this.activeKey, id)
      .expire(this.k(id), ttl)
      .expire(this.done(id), ttl)
      .expire(this.ownerKey(owner), ttl)
      .exec();
  }

  /** One replica at a time: expire overdue batches, finish stuck cancels, catch up missed events. */
  async sweep(): Promise<void> {
    const lock = `${this.settings.keyPrefix}batches:sweep-lock`;
    const ok = await this.redis.set(lock, this.instance, 'PX', Math.max(5000, this.settings.batch.sweepMs * 5), 'NX');
    if (!ok) return;
    try {
      const now = Math.floor(Date.now() / 1000);
      const ids = await this.redis.zrange(this.activeKey, 0, 199);
      for (const id of ids) {
        const h = await this.redis.hgetall(this.k(id));
        if (!h.status) {
          await this.redis.zrem(this.activeKey, id);
          continue;
        }
        if (['validating', 'in_progress', 'cancelling'].includes(h.status) && Number(h.expires_at) <= now) {
          await this.expire(id, h);
        } else if (h.status === 'finalizing' && Number(h.finalizing_at) < now - 120) {
          await this.redis.hset(this.k(id), 'status', h.target === 'cancelled' ? 'cancelling' : 'in_progress');
          await this.finalize(id, h.target === 'expired');
        } else if (['in_progress', 'cancelling'].includes(h.status) && Date.now() - Number(h.last_event_at) > 15_000) {
          await this.reconcile(id, h);
          await this.redis.hset(this.k(id), 'last_event_at', String(Date.now()));
          if (h.status === 'cancelling' && Number(h.cancelling_at) < now - 120) {
            await this.stopLines(id, h, 'batch_cancelled', true);
            await this.finalize(id);
          }
        }
      }
      await this.files.sweep();
    } finally {
      if ((await this.redis.get(lock)) === this.instance) await this.redis.del(lock);
    }
  }
}
