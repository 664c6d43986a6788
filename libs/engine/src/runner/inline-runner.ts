// onnxruntime-node behind ModelRunner in the calling thread: session.run blocks this thread while it
// runs, so use it where the scheduler itself lives off the main thread (engine-host.ts: the whole
// engine loop in a worker) or where nothing else needs the event loop. No message hop per forward.
import type * as Ort from 'onnxruntime-node';
import type { InferenceSession } from 'onnxruntime-node';
import { infoFromMetadata, type OrtRunnerOptions } from './ort-runner';
import type { ModelRunner, RunResult, RunnerInfo, RunnerOutputs, RunnerTensor } from './runner';

export class InlineOrtRunner implements ModelRunner {
  /** Time inside session.run (ms) and calls; roundTripMs equals runMs (there is no hop). */
  runMs = 0;
  calls = 0;
  roundTripMs = 0;
  private closed = false;

  private constructor(
    private readonly ort: typeof Ort,
    private readonly session: InferenceSession,
    readonly info: RunnerInfo,
  ) {}

  /** Opens the session; fails with the model path and onnxruntime's message, or the contract problem. */
  static async create(opts: OrtRunnerOptions): Promise<InlineOrtRunner> {
    const ort = await import('onnxruntime-node');
    const so: InferenceSession.SessionOptions = {
      executionProviders: opts.executionProvider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
      graphOptimizationLevel: 'all',
      interOpNumThreads: 1,
    };
    if (opts.intraOpThreads) so.intraOpNumThreads = opts.intraOpThreads;
    let session: InferenceSession;
    try {
      session = await ort.InferenceSession.create(opts.modelPath, so);
    } catch (e) {
      throw new Error(`cannot load model ${opts.modelPath}: ${(e as Error).message}`);
    }
    const meta = (list: readonly InferenceSession.ValueMetadata[]) =>
      list.map((m) => ({ name: m.name, shape: m.isTensor ? (m.shape as (number | string)[]) : undefined }));
    try {
      return new InlineOrtRunner(ort, session, infoFromMetadata(meta(session.inputMetadata), meta(session.outputMetadata)));
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  async run(feeds: Record<string, RunnerTensor>, fetches: string[]): Promise<RunResult> {
    if (this.closed) throw new Error('runner is closed');
    const tensors: Record<string, InstanceType<typeof this.ort.Tensor>> = {};
    for (const [name, f] of Object.entries(feeds)) tensors[name] = new this.ort.Tensor(f.type, f.data, f.dims);
    const t0 = performance.now();
    let out: InferenceSession.ReturnType;
    try {
      out = await this.session.run(tensors, fetches);
    } catch (e) {
      throw new Error(`onnxruntime: ${(e as Error).message}`);
    }
    const ms = performance.now() - t0;
    this.runMs += ms;
    this.roundTripMs += ms;
    this.calls++;
    const outputs: RunnerOutputs = {};
    for (const name of fetches) {
      const t = out[name];
      outputs[name] = { type: t.type, dims: Array.from(t.dims), data: t.data as Float32Array | BigInt64Array };
    }
    return { outputs };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }
}
