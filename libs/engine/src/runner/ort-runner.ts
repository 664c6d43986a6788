// onnxruntime-node behind ModelRunner, in a worker_threads worker: session.run() blocks the thread it
// runs on, so running it here keeps the caller's event loop free (BullMQ lock renewals, HTTP).
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import type { ModelRunner, RunResult, RunnerInfo, RunnerOutputs, RunnerTensor } from './runner';
import { GRAPH_IO, layerIoNames } from '@dllm/model';
import { workerReady } from './worker-ready';

export interface OrtRunnerOptions {
  modelPath: string;
  executionProvider?: 'cpu' | 'cuda';
  intraOpThreads?: number;
  /**
   * Severity from which onnxruntime's own native logger writes to stderr: 0 verbose, 1 info,
   * 2 warning (default, as onnxruntime), 3 error, 4 fatal. A failed run is also reported as the
   * rejection of run() with onnxruntime's message, so 4 loses nothing for callers that handle it
   * (tests that provoke a failure on purpose use it to keep the output clean).
   */
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
}

interface MetaEntry {
  name: string;
  shape?: (number | string)[];
}

export function infoFromMetadata(inputs: MetaEntry[], outputs: MetaEntry[]): RunnerInfo {
  const inputNames = inputs.map((m) => m.name);
  const outputNames = outputs.map((m) => m.name);
  const IN = GRAPH_IO.inputs;
  const OUT = GRAPH_IO.outputs;
  for (const need of [IN.inputIds, IN.positionIds, IN.attentionMask]) {
    if (!inputNames.includes(need)) throw new Error(`model graph has no input '${need}' (inputs: ${inputNames.join(', ')})`);
  }
  if (!outputNames.includes(OUT.logits)) throw new Error(`model graph has no output '${OUT.logits}'`);
  const v2 = [IN.logitIndex, IN.bannedTokenIds].filter((n) => !inputNames.includes(n));
  const v2out = [OUT.argmax, OUT.maxProb, OUT.entropy].filter((n) => !outputNames.includes(n));
  if (v2.length || v2out.length) {
    throw new Error(
      `model graph lacks ${[...v2.map((n) => `input '${n}'`), ...v2out.map((n) => `output '${n}'`)].join(', ')}: it is an older format than dllm-farm/v2; ` +
        'rebuild it with `dllm-farm export <dir> /tmp/ckpt && dllm-farm convert /tmp/ckpt <dir>` (docs/MODEL_FORMAT.md)',
    );
  }
  let layers = 0;
  while (inputNames.includes(layerIoNames(layers).pastKey)) layers++;
  const pk0 = layerIoNames(0).pastKey;
  if (layers === 0) throw new Error(`model graph has no ${pk0} input`);
  for (let i = 0; i < layers; i++) {
    const io = layerIoNames(i);
    if (!inputNames.includes(io.pastValue)) throw new Error(`model graph lacks input ${io.pastValue}`);
    for (const n of [io.presentKey, io.presentValue]) if (!outputNames.includes(n)) throw new Error(`model graph lacks output ${n}`);
  }
  const pk = inputs.find((m) => m.name === pk0)?.shape;
  const lg = outputs.find((m) => m.name === OUT.logits)?.shape;
  const num = (v: number | string | undefined, what: string): number => {
    if (typeof v !== 'number' || !(v > 0)) throw new Error(`model graph: ${what} must be a fixed dimension, got ${String(v)}`);
    return v;
  };
  return {
    inputNames,
    outputNames,
    layers,
    kvHeads: num(pk?.[1], `${pk0} dim 1 (kv heads)`),
    headDim: num(pk?.[3], `${pk0} dim 3 (head dim)`),
    vocabSize: num(lg?.[2], `${OUT.logits} dim 2 (vocab)`),
  };
}

export class OrtRunner implements ModelRunner {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (o: RunResult) => void; reject: (e: Error) => void }>();
  private closed = false;
  /** Time spent inside session.run, summed (ms), and calls: for overhead measurements. */
  runMs = 0;
  calls = 0;
  /** Wall time from postMessage to result, summed (ms): roundTripMs - runMs = the worker hop's overhead. */
  roundTripMs = 0;
  private readonly started = new Map<number, number>();

  private constructor(
    private readonly worker: Worker,
    readonly info: RunnerInfo,
  ) {
    worker.on('message', (msg: { type: string; id?: number; outputs?: RunnerOutputs; inputs?: RunResult['inputs']; error?: string; runMs?: number }) => {
      if (msg.type !== 'result' || msg.id === undefined) return;
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) this.started.delete(msg.id);
      if (msg.error) p.reject(new Error(`onnxruntime: ${msg.error}`));
      else {
        this.roundTripMs += performance.now() - (this.started.get(msg.id) ?? performance.now());
        this.started.delete(msg.id);
        this.runMs += msg.runMs ?? 0;
        this.calls++;
        p.resolve({ outputs: msg.outputs!, inputs: msg.inputs });
      }
    });
    worker.on('error', (err) => this.failAll(err));
    worker.on('exit', (code) => {
      if (!this.closed) this.failAll(new Error(`onnxruntime worker exited (code ${code})`));
    });
  }

  static async create(opts: OrtRunnerOptions): Promise<OrtRunner> {
    const worker = new Worker(path.join(__dirname, 'ort-worker.js'), {
      workerData: {
        modelPath: opts.modelPath,
        executionProvider: opts.executionProvider ?? 'cpu',
        intraOpThreads: opts.intraOpThreads ?? 0,
        logSeverityLevel: opts.logSeverityLevel ?? 2,
      },
    });
    type Msg = { type: string; error?: string; inputMetadata: MetaEntry[]; outputMetadata: MetaEntry[] };
    const ready = await workerReady<Msg, Msg>(
      worker,
      (m) => (m.type === 'ready' ? { ok: m } : m.type === 'error' ? { err: new Error(`cannot load model ${opts.modelPath}: ${m.error}`) } : undefined),
      (code) => `onnxruntime worker exited while loading (code ${code})`,
    );
    let info: RunnerInfo;
    try {
      info = infoFromMetadata(ready.inputMetadata, ready.outputMetadata);
    } catch (e) {
      await worker.terminate();
      throw e;
    }
    return new OrtRunner(worker, info);
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  /**
   * Feeds' ArrayBuffers are transferred to the worker (no copy; they are detached here until the
   * result hands them back in RunResult.inputs). onnxruntime-node rejects SharedArrayBuffer-backed
   * tensors ("Invalid argument"), so transfer, not shared memory, is the zero-copy path.
   */
  run(feeds: Record<string, RunnerTensor>, fetches: string[]): Promise<RunResult> {
    if (this.closed) return Promise.reject(new Error('runner is closed'));
    const id = this.nextId++;
    const transfer: ArrayBuffer[] = [];
    for (const f of Object.values(feeds)) {
      const b = f.data.buffer as ArrayBuffer;
      if (!(b instanceof SharedArrayBuffer) && b.byteLength > 0 && !transfer.includes(b)) transfer.push(b);
    }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.started.set(id, performance.now());
      this.worker.postMessage({ type: 'run', id, feeds, fetches }, transfer);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 5000);
      this.worker.once('message', (m: { type: string }) => {
        if (m.type === 'closed') {
          clearTimeout(t);
          resolve();
        }
      });
      this.worker.postMessage({ type: 'close' });
    });
    await this.worker.terminate();
  }
}

/**
 * Growable staging buffers, one per input name: feeds are views into them. They travel to the
 * runner's worker by transfer and come back with the result (adopt), so steady state allocates nothing.
 */
export class StagingArena {
  private readonly bufs = new Map<string, ArrayBuffer>();

  private get(name: string, bytes: number): ArrayBuffer {
    let buf = this.bufs.get(name);
    // A detached buffer (byteLength 0: still with the runner, or lost with a failed run) is replaced.
    if (!buf || buf.byteLength === 0 || buf.byteLength < bytes) {
      buf = new ArrayBuffer(Math.max(bytes, (buf?.byteLength ?? 0) * 2, 64));
      this.bufs.set(name, buf);
    }
    return buf;
  }

  float32(name: string, length: number): Float32Array {
    return new Float32Array(this.get(name, length * 4), 0, length);
  }

  int64(name: string, length: number): BigInt64Array {
    return new BigInt64Array(this.get(name, length * 8), 0, length);
  }

  /** Takes back the buffers a runner returned. */
  adopt(inputs: Record<string, Float32Array | BigInt64Array> | undefined): void {
    if (!inputs) return;
    for (const [name, arr] of Object.entries(inputs)) {
      const cur = this.bufs.get(name);
      if (!cur || cur.byteLength === 0 || cur.byteLength <= arr.buffer.byteLength) this.bufs.set(name, arr.buffer as ArrayBuffer);
    }
  }
}
