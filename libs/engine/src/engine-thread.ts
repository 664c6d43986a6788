// The caller's side of a worker-thread engine: the scheduler loop and the onnxruntime session live
// together in one worker (engine-host.ts), so no forward pays a message round trip and this thread's
// event loop stays free (BullMQ lock renewals, HTTP). Here: the tokenizer (codec), the model info,
// one pending promise per request, and the last stats snapshot the thread sent.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { EngineApi, EngineCreateOptions, EngineStats, GenerateHooks, GenerateRequest } from './engine';
import { fromWire, type FromHost, type HostOptions, type ModelInfo, type ToHost } from './engine-protocol';
import { loadEngineModelDir, type TextCodec } from './model-dir';
import type { GenerationResult } from './sequence';
import { workerReady } from './runner/worker-ready';

interface Pending {
  resolve: (r: GenerationResult) => void;
  reject: (e: Error) => void;
  hooks: GenerateHooks;
  detach: () => void;
}

export class EngineThread implements EngineApi {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly swaps = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private closed = false;
  private closing: Promise<void> | null = null;
  private dead: Error | null = null;

  private constructor(
    private readonly worker: Worker,
    private info: ModelInfo,
    private codecNow: TextCodec,
    private pageBytesNow: number,
    private snapshot: EngineStats,
  ) {
    worker.on('message', (m: FromHost) => this.onMessage(m));
    worker.on('error', (err) => this.die(err));
    worker.on('exit', (code) => {
      if (!this.closed) this.die(new Error(`engine thread exited (code ${code})`));
    });
  }

  /** Loads the model directory here (tokenizer, manifest checks) and in the engine thread (session). */
  static async create(opts: EngineCreateOptions): Promise<EngineThread> {
    const dir = await loadEngineModelDir(opts.modelDir);
    const { thread: _thread, ...hostOpts } = opts;
    const worker = new Worker(path.join(__dirname, 'engine-worker.js'), { workerData: hostOpts satisfies HostOptions });
    const ready = await workerReady<FromHost, Extract<FromHost, { t: 'ready' }>>(
      worker,
      (m) => (m.t === 'ready' ? { ok: m } : m.t === 'init-error' ? { err: fromWire(m.error) } : undefined),
      (code) => `engine thread exited while loading (code ${code})`,
    );
    return new EngineThread(worker, ready.model, dir.codec, ready.pageBytes, ready.stats);
  }

  get model(): ModelInfo {
    return this.info;
  }

  get codec(): TextCodec {
    return this.codecNow;
  }

  private post(m: ToHost): void {
    this.worker.postMessage(m);
  }

  generate(req: GenerateRequest, hooks: GenerateHooks = {}): Promise<GenerationResult> {
    if (this.closed) return Promise.reject(new Error('engine is closed'));
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<GenerationResult>((resolve, reject) => {
      const signal = hooks.signal;
      const onAbort = () => this.post({ t: 'cancel', id });
      signal?.addEventListener('abort', onAbort, { once: true });
      const detach = () => signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, { resolve, reject, hooks, detach });
      // Only plain data crosses: the hooks stay here (abort -> cancel message, block events come back).
      const plain: GenerateRequest = { prompt: req.prompt, promptIds: req.promptIds, options: req.options };
      try {
        this.post({ t: 'generate', id, req: plain, aborted: signal?.aborted === true, blocks: !!hooks.onBlock });
      } catch (e) {
        this.pending.delete(id);
        detach();
        reject(e instanceof Error ? new RangeError(`request cannot be sent to the engine thread: ${e.message}`) : (e as Error));
      }
    });
  }

  private onMessage(m: FromHost): void {
    switch (m.t) {
      case 'block': {
        const p = this.pending.get(m.id);
        try {
          p?.hooks.onBlock?.(m.event);
        } catch {
          /* a listener's error must not break decoding */
        }
        return;
      }
      case 'result':
      case 'error': {
        this.snapshot = m.stats;
        const p = this.pending.get(m.id);
        if (p) {
          this.pending.delete(m.id);
          p.detach();
          if (m.t === 'result') p.resolve(m.result);
          else p.reject(fromWire(m.error));
          return;
        }
        const s = this.swaps.get(m.id);
        if (s && m.t === 'error') {
          this.swaps.delete(m.id);
          s.reject(fromWire(m.error));
        }
        return;
      }
      case 'swapped': {
        this.snapshot = m.stats;
        this.info = m.model;
        this.pageBytesNow = m.pageBytes;
        const s = this.swaps.get(m.id);
        this.swaps.delete(m.id);
        s?.resolve();
        return;
      }
      case 'stats':
        this.snapshot = m.stats;
        return;
      default:
        return;
    }
  }

  private die(err: Error): void {
    this.dead = err;
    for (const p of this.pending.values()) {
      p.detach();
      p.reject(err);
    }
    this.pending.clear();
    for (const s of this.swaps.values()) s.reject(err);
    this.swaps.clear();
  }

  async swapModel(modelDir: string): Promise<void> {
    if (this.closed) throw new Error('engine is closed');
    if (this.dead) throw this.dead;
    const dir = await loadEngineModelDir(modelDir);
    const id = this.nextId++;
    await new Promise<void>((resolve, reject) => {
      this.swaps.set(id, { resolve, reject });
      this.post({ t: 'swap', id, modelDir });
    });
    this.codecNow = dir.codec;
  }

  stats(): EngineStats {
    return this.snapshot;
  }

  pageBytes(): number {
    return this.pageBytesNow;
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      const err = new Error('engine closed');
      if (!this.dead) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 5000);
          const onMsg = (m: FromHost) => {
            if (m.t !== 'closed') return;
            clearTimeout(t);
            this.worker.off('message', onMsg);
            resolve();
          };
          this.worker.on('message', onMsg);
          this.post({ t: 'close' });
        });
      }
      this.closed = true;
      // Requests the thread rejected on close arrived before 'closed'; anything left fails here.
      for (const p of this.pending.values()) {
        p.detach();
        p.reject(err);
      }
      this.pending.clear();
      await this.worker.terminate();
    })();
    return this.closing;
  }
}
