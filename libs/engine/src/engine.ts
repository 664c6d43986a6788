// The engine: model handles (hot swap), the scheduler (dynamic batching), the shared KV pool.
// generate() enqueues a Sequence; one async loop admits sequences (when the pool can reserve their
// worst case), asks every active sequence for its next forward, groups those by (model, S), runs one
// batched forward per group, and hands each row back. A sequence leaves the moment it is done; new
// ones join on the next tick.
//
// Threads: `Engine.create` runs that loop and the onnxruntime session together in one worker thread
// (engine-thread.ts / engine-host.ts): only admissions, block events, cancels, results and stats
// cross threads, no forward pays a message round trip, and the caller's event loop stays free.
// `EngineCore` is the loop itself; `Engine` is the facade over either arrangement.
import { GRAPH_IO, layerIoNames } from '@dllm/model';
import { buildBatch } from './batch';
import { costOf, ForwardCostModel, planTick, resolveTickPlan, type LinearCost, type PlanRow, type TickPlanConfig, type TickPlanOptions } from './tick-plan';
import { KvPool, pageFloats } from './kv/pool';
import { loadEngineModelDir, type EngineManifest } from './model-dir';
import { modelDecodeDefaults, resolveOptions, type DecodeOptions } from './options';
import { policies } from './policies';
import { randomSeed } from '@dllm/prng';
import { arBlockOrderPolicy } from './policies/ar';
import { InlineOrtRunner } from './runner/inline-runner';
import { OrtRunner, StagingArena } from './runner/ort-runner';
import type { ModelRunner } from './runner/runner';
import { Sequence, type GenerationResult } from './sequence';
import type { DrawOutputs, ForwardSpec, ModelHandle, RowOutput } from './forward';
import type { BlockEvent } from './emission';
import type { ModelInfo } from './engine-protocol';

export interface EngineCreateOptions {
  modelDir: string;
  executionProvider?: 'cpu' | 'cuda';
  intraOpThreads?: number;
  /** KV pool budget in bytes (default 256 MiB). */
  kvPoolBytes?: number;
  /** Most sequences decoding at once (default 16); more wait in the queue. */
  maxBatchSize?: number;
  /** Share committed KV blocks between sequences by prefix hash (default true). */
  prefixSharing?: boolean;
  /**
   * Where the scheduler loop and the onnxruntime session run:
   * - 'worker' (default): both in one worker thread; the caller's event loop stays free, no per-forward hop.
   * - 'inline': both in the calling thread (session.run blocks it; for tools with nothing else to do).
   * - 'hop': the loop in the calling thread, session.run in a worker (one message round trip per forward;
   *   the arrangement before the engine moved into its own thread, kept for A/B measurements).
   */
  thread?: 'worker' | 'inline' | 'hop';
  /**
   * How a tick packs rows of different shapes (tick-plan.ts): forwards with at most `holdBelow` of the
   * largest forward's rows wait up to `maxHoldTicks` ticks so sequences meet in fuller forwards
   * (phase alignment; `maxHoldTicks: 0` turns it off). Default DEFAULT_TICK_PLAN (2 ticks, 0.5).
   * `padding: 'cost'` (default) pads smaller size classes into a larger forward when the cost model
   * says one padded forward is cheaper than two; the model is fitted online from this engine's own
   * session.run times, or fixed by `costModel` (ms = fixedMs + perPositionMs x B x S) for a device
   * whose costs are known.
   */
  tickPlan?: TickPlanConfig;
}

export interface GenerateRequest {
  prompt?: string;
  promptIds?: number[];
  options?: Partial<DecodeOptions>;
}

export interface GenerateHooks {
  signal?: AbortSignal;
  onBlock?: (e: BlockEvent) => void;
}

export interface EngineStats {
  pool: ReturnType<KvPool['stats']>;
  active: number;
  queued: number;
  forwards: number;
  /** Rows summed over all forwards (forwards x batch): rows / forwards = mean batch size. */
  rows: number;
  /** Runner time: inside session.run (runMs) and call round trips through the worker (roundTripMs). */
  runner: { calls: number; runMs: number; roundTripMs: number };
  /**
   * Shape work summed over all forwards, padding included (what onnxruntime computes), for FLOP counts:
   * positions = sum of B x S (`input_ids` elements), logitRows = sum of B x R (`logit_index` elements of
   * forwards that fetch draw statistics; 0 otherwise, the LM head is skipped), keys = sum of B x S x (P + S)
   * (`attention_mask` elements: query-key pairs per layer and head); rowPositions = the rows' own new
   * positions, without padding (positions - rowPositions = padding computed).
   */
  work: { positions: number; rowPositions: number; logitRows: number; keys: number };
  /** Row-ticks spent waiting for a fuller forward (tick-plan.ts phase alignment), summed over ticks. */
  heldRows: number;
  /** The fitted forward cost model of the current model (null until fitted): ms = fixedMs + perPositionMs x B x S. */
  cost: LinearCost | null;
}

export type { TickPlanConfig } from './tick-plan';

/** A row of one tick: its forward spec and the planner's view of it. */
interface PlannedRow extends PlanRow {
  spec: ForwardSpec;
}

interface Pending {
  seq: Sequence;
  resolve: (r: GenerationResult) => void;
  reject: (e: Error) => void;
}

let nextHandleId = 1;

export { sizeClass } from './tick-plan';

async function loadHandle(opts: EngineCreateOptions): Promise<ModelHandle> {
  const dir = await loadEngineModelDir(opts.modelDir);
  const ro = { modelPath: dir.onnxPath, executionProvider: opts.executionProvider, intraOpThreads: opts.intraOpThreads };
  const runner = opts.thread === 'hop' ? await OrtRunner.create(ro) : await InlineOrtRunner.create(ro);
  return handleFrom(dir.manifest, runner, dir.codec);
}

export function handleFrom(manifest: EngineManifest, runner: ModelRunner, codec: ModelHandle['codec']): ModelHandle {
  const info = runner.info;
  for (const [k, v] of Object.entries(manifest.tokens)) {
    if (typeof v === 'number' && (v < 0 || v >= info.vocabSize))
      throw new Error(`manifest tokens.${k} = ${v} is outside the model's vocabulary (${info.vocabSize})`);
  }
  return {
    id: nextHandleId++,
    name: manifest.name,
    version: manifest.version,
    kind: manifest.kind,
    manifest,
    namespace: `${manifest.name}@${manifest.version}`,
    runner,
    codec,
    geometry: { layers: info.layers, kvHeads: info.kvHeads, headDim: info.headDim, pagePositions: manifest.block_size },
    vocabSize: info.vocabSize,
    maskId: manifest.tokens.mask,
    eosId: manifest.tokens.eos,
    delimiters: new Set(manifest.delimiter_token_ids ?? []),
    maxPositions: (manifest.architecture as { max_position_embeddings?: number } | undefined)?.max_position_embeddings ?? Infinity,
    decodeDefaults: modelDecodeDefaults(manifest.decode_defaults, manifest.kind, `${manifest.name}@${manifest.version} dllm.json`),
    active: 0,
    retired: false,
  };
}

/** What a caller can do with an engine, wherever its loop runs. */
export interface EngineApi {
  readonly model: ModelInfo;
  /** Text <-> token ids of the current model. */
  readonly codec: ModelHandle['codec'];
  generate(req: GenerateRequest, hooks?: GenerateHooks): Promise<GenerationResult>;
  swapModel(modelDir: string): Promise<void>;
  stats(): EngineStats;
  pageBytes(): number;
  close(): Promise<void>;
}

/**
 * The engine facade. `Engine.create` loads a model directory and (by default) runs the scheduler and
 * the session in a worker thread; `Engine.fromRunner` runs the loop in this thread on any ModelRunner.
 * Errors: bad requests reject with a RangeError naming the field; a model directory that does not load
 * rejects `create` with the loader's message.
 */
export class Engine implements EngineApi {
  private constructor(private readonly impl: EngineApi) {}

  static async create(opts: EngineCreateOptions): Promise<Engine> {
    if ((opts.thread ?? 'worker') === 'worker') {
      const { EngineThread } = await import('./engine-thread');
      return new Engine(await EngineThread.create(opts));
    }
    return new Engine(await EngineCore.create(opts));
  }

  /** For tests and embedders that bring their own runner (e.g. a device-resident one); the loop runs in this thread. */
  static fromRunner(
    manifest: EngineManifest,
    runner: ModelRunner,
    codec: ModelHandle['codec'],
    opts: { kvPoolBytes?: number; maxBatchSize?: number; tickPlan?: TickPlanConfig } = {},
  ): Engine {
    return new Engine(EngineCore.fromRunner(manifest, runner, codec, opts));
  }

  get model(): EngineApi['model'] {
    return this.impl.model;
  }

  get codec(): ModelHandle['codec'] {
    return this.impl.codec;
  }

  generate(req: GenerateRequest, hooks: GenerateHooks = {}): Promise<GenerationResult> {
    return this.impl.generate(req, hooks);
  }

  /** Hot swap: new requests use the new model; in-flight ones finish on the old one. */
  swapModel(modelDir: string): Promise<void> {
    return this.impl.swapModel(modelDir);
  }

  /** Pool, queue and runner counters (with a worker-thread engine: the snapshot the thread sent last, at most ~1 s old, current after every result). */
  stats(): EngineStats {
    return this.impl.stats();
  }

  /** Bytes of one KV page of the current model. */
  pageBytes(): number {
    return this.impl.pageBytes();
  }

  close(): Promise<void> {
    return this.impl.close();
  }
}

/** The scheduler loop, the KV pool and the model handles, in the thread that calls it. */
export class EngineCore implements EngineApi {
  private handle: ModelHandle;
  private readonly retired = new Set<ModelHandle>();
  readonly pool: KvPool;
  private readonly queue: Pending[] = [];
  private readonly active = new Map<Sequence, Pending>();
  private readonly arena = new StagingArena();
  private readonly maxBatch: number;
  private running = false;
  /** The scheduler loop now running (resolved when none): close() waits for it, so no forward is in flight when the runners close. */
  private loopDone: Promise<void> = Promise.resolve();
  private closed = false;
  private forwards = 0;
  private rows = 0;
  private readonly work = { positions: 0, rowPositions: 0, logitRows: 0, keys: 0 };
  private wake: (() => void) | null = null;
  /** Rows waiting for a later tick (phase alignment), with their unchanged specs. */
  private readonly held = new Map<Sequence, PlannedRow>();
  private heldRows = 0;
  private costModel = new ForwardCostModel();
  private readonly tickPlan: Omit<TickPlanOptions, 'cost'>;
  /** tickPlan.costModel when given; else the planner uses `costModel`, fitted online. */
  private readonly fixedCost: LinearCost | null;

  private constructor(handle: ModelHandle, pool: KvPool, maxBatch: number, tickPlan: TickPlanConfig = {}) {
    this.handle = handle;
    this.pool = pool;
    this.maxBatch = maxBatch;
    ({ plan: this.tickPlan, fixedCost: this.fixedCost } = resolveTickPlan(tickPlan));
  }

  /** The forward cost model the planner uses now: the fixed one, the fitted one, or none yet. */
  private currentCost(): LinearCost | null {
    return this.fixedCost ?? this.costModel.coefficients();
  }

  static async create(opts: EngineCreateOptions): Promise<EngineCore> {
    const maxBatch = opts.maxBatchSize ?? 16;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatchSize must be a positive integer, got ${maxBatch}`);
    const pool = new KvPool(opts.kvPoolBytes ?? 256 * 1024 * 1024);
    pool.sharing = opts.prefixSharing ?? true;
    const handle = await loadHandle(opts);
    const e = new EngineCore(handle, pool, maxBatch, opts.tickPlan);
    e.createOpts = opts;
    return e;
  }

  /** For tests and embedders that bring their own runner (e.g. a device-resident one). */
  static fromRunner(
    manifest: EngineManifest,
    runner: ModelRunner,
    codec: ModelHandle['codec'],
    opts: { kvPoolBytes?: number; maxBatchSize?: number; tickPlan?: TickPlanConfig } = {},
  ): EngineCore {
    return new EngineCore(handleFrom(manifest, runner, codec), new KvPool(opts.kvPoolBytes ?? 256 * 1024 * 1024), opts.maxBatchSize ?? 16, opts.tickPlan);
  }

  private createOpts: EngineCreateOptions | null = null;

  get model(): ModelInfo {
    const h = this.handle;
    return { name: h.name, version: h.version, kind: h.kind, manifest: h.manifest, decodeDefaults: h.decodeDefaults };
  }

  /** Text <-> token ids of the current model. */
  get codec(): ModelHandle['codec'] {
    return this.handle.codec;
  }

  generate(req: GenerateRequest, hooks: GenerateHooks = {}): Promise<GenerationResult> {
    if (this.closed) return Promise.reject(new Error('engine is closed'));
    const h = this.handle;
    let seq: Sequence;
    try {
      if ((req.prompt === undefined) === (req.promptIds === undefined)) throw new RangeError('give exactly one of prompt (text) or promptIds');
      if (req.prompt !== undefined && typeof req.prompt !== 'string') throw new RangeError('prompt must be a string');
      let opts = resolveOptions(
        req.options,
        { kind: h.kind, blockSize: h.manifest.block_size, vocabSize: h.vocabSize, decodeDefaults: h.decodeDefaults },
        randomSeed,
      );
      let policy = policies[opts.policy];
      if (opts.policy === 'ar' && h.kind !== 'autoregressive') {
        // AR order with the block-diffusion model's own attention: one-slot sub-blocks (policies/ar.ts).
        opts = { ...opts, subBlockSize: 1 };
        policy = arBlockOrderPolicy;
      }
      // A sub-block as long as the block leaves the sub-block cache nothing to reuse: every step is the whole window.
      if (opts.subBlockCache && opts.subBlockSize >= opts.blockSize) opts = { ...opts, subBlockCache: false };
      const ids = req.promptIds ?? h.codec.encode(req.prompt!);
      seq = new Sequence(h, opts, policy, ids, this.pool, hooks, (s) => this.onSeqDone(s));
    } catch (e) {
      return Promise.reject(e);
    }
    const need = seq.worstCaseBytes();
    if (need > this.pool.capacityBytes) {
      return Promise.reject(
        new RangeError(
          `request needs up to ${need} bytes of KV cache (prompt + maxNewTokens), more than the pool's budget of ${this.pool.capacityBytes} bytes: lower maxNewTokens or raise kvPoolBytes`,
        ),
      );
    }
    return new Promise<GenerationResult>((resolve, reject) => {
      this.queue.push({ seq, resolve, reject });
      h.active++;
      if (hooks.signal) {
        hooks.signal.addEventListener('abort', () => this.kick(), { once: true });
      }
      this.kick();
    });
  }

  private onSeqDone(seq: Sequence): void {
    const p = this.active.get(seq) ?? this.queue.find((q) => q.seq === seq);
    this.active.delete(seq);
    const qi = this.queue.findIndex((q) => q.seq === seq);
    if (qi >= 0) this.queue.splice(qi, 1);
    this.handleDrained(seq.handle);
    if (p && seq.result) p.resolve(seq.result);
  }

  private handleDrained(h: ModelHandle): void {
    h.active--;
    if (h.retired && h.active === 0 && this.retired.has(h)) {
      this.retired.delete(h);
      void h.runner.close();
    }
  }

  private kick(): void {
    if (this.wake) {
      const w = this.wake;
      this.wake = null;
      w();
    }
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop().finally(() => {
      this.running = false;
      if (!this.closed && (this.queue.length > 0 || this.active.size > 0)) this.kick();
    });
  }

  private admit(): void {
    // Cancelled before admission: finish right away.
    for (const p of [...this.queue]) {
      if (p.seq.done) continue;
      if (p.seq.hooks.signal?.aborted) p.seq.cancelQueued();
    }
    while (this.queue.length > 0 && this.active.size < this.maxBatch) {
      const p = this.queue[0];
      const need = p.seq.worstCaseBytes();
      if (!this.pool.reserve(need)) break; // wait for memory: sequences finishing or cached pages becoming evictable
      p.seq.setReservation(need);
      this.queue.shift();
      this.active.set(p.seq, p);
    }
  }

  private async loop(): Promise<void> {
    while (!this.closed && (this.queue.length > 0 || this.active.size > 0)) {
      this.admit();
      const rows: PlannedRow[] = [];
      for (const seq of [...this.active.keys()]) {
        const waiting = this.held.get(seq);
        if (waiting) {
          rows.push(waiting);
          continue;
        }
        let spec: ForwardSpec | null;
        try {
          spec = seq.nextForward();
        } catch (e) {
          this.failSeq(seq, e as Error);
          continue;
        }
        if (!spec) continue;
        // A request's first forward (prefill, AR prompt) has no later rows to meet: never held.
        const first = spec.kind === 'prefill' || (spec.kind === 'ar' && spec.ids.length > 1);
        rows.push({ spec, handle: seq.handle.id, S: spec.ids.length, held: 0, holdable: !first });
      }
      const c = this.currentCost();
      const plan = planTick(rows, { ...this.tickPlan, cost: c ? (x) => costOf(c, x) : null });
      this.held.clear();
      for (const r of plan.held) {
        r.held++;
        this.held.set(r.spec.seq, r);
      }
      this.heldRows += plan.held.length;
      if (plan.forwards.length === 0 && plan.held.length === 0) {
        if (this.active.size === 0 && this.queue.length > 0) {
          // Nothing holds memory, yet the head request could not be admitted: never spin; fail it loudly.
          const p = this.queue.shift()!;
          p.seq.fail();
          this.handleDrained(p.seq.handle);
          p.reject(new Error(`cannot reserve ${p.seq.worstCaseBytes()} bytes of KV cache (pool: ${JSON.stringify(this.pool.stats())})`));
          continue;
        }
        // Nothing runnable (e.g. waiting for a shared page or for memory): wait for a change.
        if (this.active.size > 0 || this.queue.length > 0) {
          await new Promise<void>((r) => {
            this.wake = r;
            setTimeout(r, 5);
          });
        }
        continue;
      }
      for (const f of plan.forwards) await this.runGroup(f.map((r) => r.spec));
      // Let timers and I/O run between ticks (BullMQ lock renewals, HTTP).
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  private async runGroup(specs: ForwardSpec[]): Promise<void> {
    const h = specs[0].seq.handle;
    const batch = buildBatch(h, specs, this.arena);
    let out;
    try {
      const t0 = performance.now();
      const res = await h.runner.run(batch.feeds, batch.fetches);
      if (h === this.handle) this.costModel.observe(batch.B * batch.S, performance.now() - t0);
      this.arena.adopt(res.inputs);
      out = res.outputs;
    } catch (e) {
      for (const s of specs) this.failSeq(s.seq, e as Error);
      return;
    }
    this.forwards++;
    this.rows += specs.length;
    this.work.positions += batch.B * batch.S;
    for (const sp of specs) this.work.rowPositions += sp.ids.length;
    this.work.logitRows += batch.B * batch.R;
    this.work.keys += batch.B * batch.S * (batch.P + batch.S);
    const OUT = GRAPH_IO.outputs;
    const draws: DrawOutputs | null = out[OUT.argmax]
      ? {
          R: batch.R,
          V: h.vocabSize,
          argmax: out[OUT.argmax].data as BigInt64Array,
          maxProb: out[OUT.maxProb].data as Float32Array,
          entropy: out[OUT.entropy].data as Float32Array,
          logits: (out[OUT.logits]?.data as Float32Array | undefined) ?? null,
        }
      : null;
    const layers = h.geometry.layers;
    const pk = out[layerIoNames(0).presentKey] ? Array.from({ length: layers }, (_, l) => out[layerIoNames(l).presentKey].data as Float32Array) : null;
    const pv = pk ? Array.from({ length: layers }, (_, l) => out[layerIoNames(l).presentValue].data as Float32Array) : null;
    for (let r = 0; r < specs.length; r++) {
      const row: RowOutput = { draws, presentK: pk, presentV: pv, row: r, S: batch.S };
      try {
        specs[r].seq.onOutput(specs[r], row);
      } catch (e) {
        this.failSeq(specs[r].seq, e as Error);
      }
    }
  }

  private failSeq(seq: Sequence, err: Error): void {
    const p = this.active.get(seq);
    this.active.delete(seq);
    seq.fail();
    this.handleDrained(seq.handle);
    p?.reject(err);
  }

  /** Hot swap: new requests use the new model; in-flight ones finish on the old one, whose runner closes when they drain. */
  async swapModel(modelDir: string): Promise<void> {
    if (this.closed) throw new Error('engine is closed');
    const next = await loadHandle({ ...(this.createOpts ?? {}), modelDir });
    const old = this.handle;
    if (next.namespace === old.namespace) {
      // Same name and version: refuse silently mixing different weights under one cache namespace.
      await next.runner.close();
      throw new Error(`swapModel: ${modelDir} has the same name and version (${old.namespace}) as the serving model; bump the manifest version`);
    }
    this.handle = next;
    this.costModel = new ForwardCostModel();
    old.retired = true;
    if (old.active === 0) await old.runner.close();
    else this.retired.add(old);
  }

  stats(): EngineStats {
    return {
      pool: this.pool.stats(),
      active: this.active.size,
      queued: this.queue.length,
      forwards: this.forwards,
      rows: this.rows,
      runner: this.runnerStats(),
      work: { ...this.work },
      heldRows: this.heldRows,
      cost: this.currentCost(),
    };
  }

  private runnerStats(): EngineStats['runner'] {
    const r = this.handle.runner as { calls?: number; runMs?: number; roundTripMs?: number };
    return { calls: r.calls ?? 0, runMs: r.runMs ?? 0, roundTripMs: r.roundTripMs ?? 0 };
  }

  /** Bytes of one KV page of the current model. */
  pageBytes(): number {
    return pageFloats(this.handle.geometry) * 4;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new Error('engine closed');
    for (const p of this.queue.splice(0)) {
      p.seq.fail();
      p.reject(err);
    }
    for (const [seq, p] of [...this.active]) {
      seq.fail();
      p.reject(err);
    }
    this.active.clear();
    if (this.wake) this.wake();
    // The loop ends after the forward it may be awaiting: releasing an onnxruntime session while
    // its run() is in flight aborts the process in the native addon ('terminate called ...').
    await this.loopDone.catch(() => undefined);
    await this.handle.runner.close();
    for (const h of this.retired) await h.runner.close();
    this.retired.clear();
  }
}
