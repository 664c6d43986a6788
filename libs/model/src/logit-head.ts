// The graph's head in model format dllm-farm/v2: logits only for the positions the caller draws
// from, and the per-position statistics a greedy or threshold decoder needs, computed inside ORT.
//
//   logit_index       int64 [B, R]   which of the S new positions of each row need a draw (R may be 0)
//   banned_token_ids  int64 [N]      token ids the statistics exclude (the MASK token; N may be 0)
//   logits            float [B, R, V]  raw logits of the selected positions (no ban applied)
//   argmax            int64 [B, R]   most likely token after the ban (lowest id on ties)
//   max_prob          float [B, R]   its softmax probability
//   log_sum_exp       float [B, R]   log sum_v exp(logit_v) over the non-banned tokens
//   entropy           float [B, R]   entropy (nats) of that softmax
//
// With R = 0 (KV-only prefill and commit forwards that draw nothing) the LM head multiplies an empty
// matrix: it costs nothing. The statistics follow the engine's JS reference (libs/engine sampling.ts
// `logitStatistics` / greedy `drawToken`): softmax at temperature 1 with banned ids at probability 0.
import { TensorType, type IoSpec, type OnnxGraph } from './onnx';

/** Graph I/O names of the draw head (docs/MODEL_FORMAT.md, format dllm-farm/v2). */
export const DRAW_IO = {
  logitIndex: 'logit_index',
  bannedTokenIds: 'banned_token_ids',
  logits: 'logits',
  argmax: 'argmax',
  maxProb: 'max_prob',
  logSumExp: 'log_sum_exp',
  entropy: 'entropy',
} as const;

/** Logit of a banned token inside the statistics: exp() of it underflows to exactly 0 in float32. */
export const BANNED_LOGIT = -1e9;

/**
 * Gathers the rows `logit_index` selects from `x` [B, S, D] (GatherND with batch_dims = 1);
 * returns the name of the [B, R, D] value.
 */
export function gatherDrawRows(g: OnnxGraph, x: string): string {
  const idx = g.op('Unsqueeze', [DRAW_IO.logitIndex, g.ints([-1])]); // [B,R,1]
  return g.op('GatherND', [x, idx], { batch_dims: 1 });
}

/**
 * Emits the graph outputs argmax / max_prob / log_sum_exp / entropy from `logits` [B, R, V]
 * (the name of an existing value), with `banned_token_ids` excluded.
 */
export function emitDrawStatistics(g: OnnxGraph, logits: string, vocabSize: number): void {
  // bias [V]: 0, and BANNED_LOGIT at the banned ids.
  const zeros = g.op('ConstantOfShape', [g.ints([vocabSize])]);
  const bidx = g.op('Unsqueeze', [DRAW_IO.bannedTokenIds, g.ints([-1])]); // [N,1]
  const upd = g.op('Expand', [g.floats([BANNED_LOGIT], undefined, true), g.op('Shape', [DRAW_IO.bannedTokenIds])]);
  const bias = g.op('ScatterND', [zeros, bidx, upd]);
  const x = g.op('Add', [logits, bias]);
  g.node('ArgMax', [x], [DRAW_IO.argmax], { axis: -1, keepdims: 0, select_last_index: 0 });
  const logp = g.op('LogSoftmax', [x], { axis: -1 });
  const maxLogit = g.op('ReduceMax', [x], { axes: [-1], keepdims: 0 });
  const maxLogp = g.op('ReduceMax', [logp], { axes: [-1], keepdims: 0 });
  g.node('Exp', [maxLogp], [DRAW_IO.maxProb]);
  // log_sum_exp = max logit - max log-prob (both of the same row): no second pass over V.
  g.node('Sub', [maxLogit, maxLogp], [DRAW_IO.logSumExp]);
  const plogp = g.op('ReduceSum', [g.op('Mul', [g.op('Exp', [logp]), logp]), g.ints([-1])], { keepdims: 0 });
  g.node('Neg', [plogp], [DRAW_IO.entropy]);
}

/** The draw head's extra graph inputs (after the v1 inputs). */
export function drawInputSpecs(): IoSpec[] {
  return [
    { name: DRAW_IO.logitIndex, type: TensorType.INT64, shape: ['batch', 'drawn'] },
    { name: DRAW_IO.bannedTokenIds, type: TensorType.INT64, shape: ['banned'] },
  ];
}

/** The draw head's outputs: logits [B, R, V] first, then the statistics [B, R]. */
export function drawOutputSpecs(vocabSize: number): IoSpec[] {
  return [
    { name: DRAW_IO.logits, type: TensorType.FLOAT, shape: ['batch', 'drawn', vocabSize] },
    { name: DRAW_IO.argmax, type: TensorType.INT64, shape: ['batch', 'drawn'] },
    { name: DRAW_IO.maxProb, type: TensorType.FLOAT, shape: ['batch', 'drawn'] },
    { name: DRAW_IO.logSumExp, type: TensorType.FLOAT, shape: ['batch', 'drawn'] },
    { name: DRAW_IO.entropy, type: TensorType.FLOAT, shape: ['batch', 'drawn'] },
  ];
}
