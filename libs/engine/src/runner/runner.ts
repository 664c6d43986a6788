// The one interface the engine uses to run a model forward. OrtRunner implements it with
// onnxruntime-node in a worker thread; anything else (a remote runner, a device-resident one) can too.

export type TensorType = 'float32' | 'int64';

export interface RunnerTensor {
  type: TensorType;
  dims: number[];
  data: Float32Array | BigInt64Array;
}

export interface RunnerOutputs {
  /** float32 outputs as Float32Array, int64 ones (argmax) as BigInt64Array. */
  [name: string]: { type: string; dims: number[]; data: Float32Array | BigInt64Array };
}

/** Model geometry read from the graph's declared inputs/outputs. */
export interface RunnerInfo {
  inputNames: string[];
  outputNames: string[];
  layers: number;
  kvHeads: number;
  headDim: number;
  vocabSize: number;
}

export interface RunResult {
  outputs: RunnerOutputs;
  /**
   * The feeds' buffers handed back after the run, when the runner took them (OrtRunner transfers the
   * engine's staging buffers to its worker thread without copying and returns them with the outputs).
   */
  inputs?: Record<string, Float32Array | BigInt64Array>;
}

export interface ModelRunner {
  readonly info: RunnerInfo;
  /** Feeds may be detached while the call runs; reuse their buffers only from `RunResult.inputs`. */
  run(feeds: Record<string, RunnerTensor>, fetches: string[]): Promise<RunResult>;
  close(): Promise<void>;
}
