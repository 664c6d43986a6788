// Test helpers: run a dllm-farm graph on onnxruntime-node with a given past cache and mask.
import * as ort from 'onnxruntime-node';
import { layerIoNames } from '../manifest';

export const BLOCKED = -1e9;

export interface Cache {
  keys: ort.Tensor[];
  values: ort.Tensor[];
}

export function emptyCache(layers: number, batch: number, kvHeads: number, headDim: number): Cache {
  const z = () => new ort.Tensor('float32', new Float32Array(0), [batch, kvHeads, 0, headDim]);
  return { keys: Array.from({ length: layers }, z), values: Array.from({ length: layers }, z) };
}

/** Concatenates along the sequence axis (2) of [B,H,T,D] tensors. */
export function concatSeq(a: ort.Tensor, b: ort.Tensor): ort.Tensor {
  const [B, Hh, Ta, D] = a.dims;
  const Tb = b.dims[2];
  const out = new Float32Array(B * Hh * (Ta + Tb) * D);
  const ad = a.data as Float32Array;
  const bd = b.data as Float32Array;
  for (let bh = 0; bh < B * Hh; bh++) {
    out.set(ad.subarray(bh * Ta * D, (bh + 1) * Ta * D), bh * (Ta + Tb) * D);
    out.set(bd.subarray(bh * Tb * D, (bh + 1) * Tb * D), bh * (Ta + Tb) * D + Ta * D);
  }
  return new ort.Tensor('float32', out, [B, Hh, Ta + Tb, D]);
}

/**
 * The v2 draw-head feeds that select every position of every row (`logit_index` [B,S] = 0..S-1) and
 * ban nothing, so `logits` is the full [B,S,V] of a v1 graph.
 */
export function allRowsDrawn(B: number, S: number, banned: number[] = []): Record<string, ort.Tensor> {
  const idx = new BigInt64Array(B * S);
  for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) idx[b * S + s] = BigInt(s);
  return {
    logit_index: new ort.Tensor('int64', idx, [B, S]),
    banned_token_ids: new ort.Tensor('int64', BigInt64Array.from(banned.map(BigInt)), [banned.length]),
  };
}

/**
 * One forward of batch 1: `ids` at absolute positions pos0.., attending to the past per `allow(q, k)`
 * with q, k absolute positions. Returns logits [S*V] (or [R*V] for the `drawRows` positions only),
 * the present K/V and every output.
 */
export async function forward(
  session: ort.InferenceSession,
  layers: number,
  ids: number[],
  pos0: number,
  cache: Cache,
  allow: (q: number, k: number) => boolean,
  drawRows?: number[],
  banned: number[] = [],
): Promise<{ logits: Float32Array; present: Cache; out: ort.InferenceSession.OnnxValueMapType }> {
  const S = ids.length;
  const P = cache.keys[0].dims[2];
  const T = P + S;
  const mask = new Float32Array(S * T);
  for (let s = 0; s < S; s++) for (let t = 0; t < T; t++) mask[s * T + t] = allow(pos0 + s, t) ? 0 : BLOCKED;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, S]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(pos0 + i))), [1, S]),
    attention_mask: new ort.Tensor('float32', mask, [1, 1, S, T]),
    ...allRowsDrawn(1, S, banned),
  };
  if (drawRows) feeds.logit_index = new ort.Tensor('int64', BigInt64Array.from(drawRows.map(BigInt)), [1, drawRows.length]);
  for (let i = 0; i < layers; i++) {
    feeds[layerIoNames(i).pastKey] = cache.keys[i];
    feeds[layerIoNames(i).pastValue] = cache.values[i];
  }
  const out = await session.run(feeds);
  const present: Cache = { keys: [], values: [] };
  for (let i = 0; i < layers; i++) {
    present.keys.push(out[layerIoNames(i).presentKey]);
    present.values.push(out[layerIoNames(i).presentValue]);
  }
  return { logits: out.logits.data as Float32Array, present, out };
}

export const blockCausal = (block: number) => (q: number, k: number) => Math.floor(k / block) <= Math.floor(q / block);
export const causal = (q: number, k: number) => k <= q;

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
