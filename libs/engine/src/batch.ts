// Builds one batched forward from several sequences' ForwardSpecs (same model) and hands each row its
// outputs. Rows may have different new-token counts: S is the longest, shorter rows are padded (their
// pad queries attend only to themselves, no real query sees a pad key, pads are never drawn from). Past K/V is gathered from each sequence's pages into engine-owned
// staging buffers [B,Hkv,P,Dh] (P = the batch's longest past; shorter rows are padded and the padding
// is blocked in the mask), which the runner reads without copying.
import { GRAPH_IO, layerIoNames } from '@dllm/model';
import type { ForwardSpec, ModelHandle } from './forward';
import type { RunnerTensor } from './runner/runner';
import { type StagingArena } from './runner/ort-runner';

export const MASK_BLOCKED = -1e9;

export interface BuiltBatch {
  feeds: Record<string, RunnerTensor>;
  fetches: string[];
  B: number;
  S: number;
  P: number;
  /** Drawn positions per row (`logit_index` is [B,R]; shorter rows repeat their last index). */
  R: number;
}

/** The graph outputs with the draw statistics (format v2; libs/model logit-head.ts). */
export const STAT_FETCHES = [GRAPH_IO.outputs.argmax, GRAPH_IO.outputs.maxProb, GRAPH_IO.outputs.entropy] as const;

const IN = GRAPH_IO.inputs;

export function pastLength(s: ForwardSpec): number {
  return s.pastLen + (s.extra ? s.extra.len : 0);
}

export function buildBatch(handle: ModelHandle, specs: readonly ForwardSpec[], arena: StagingArena): BuiltBatch {
  const g = handle.geometry;
  const B = specs.length;
  let S = 0;
  for (const s of specs) S = Math.max(S, s.ids.length);
  let P = 0;
  for (const s of specs) P = Math.max(P, pastLength(s));
  const T = P + S;
  let R = 0;
  for (const s of specs) R = Math.max(R, s.drawRows.length);
  const logitIndex = arena.int64(IN.logitIndex, B * R);
  for (let r = 0; r < B; r++) {
    const rows = specs[r].drawRows;
    for (let k = 0; k < R; k++) {
      const v = rows.length ? rows[Math.min(k, rows.length - 1)] : 0;
      if (v < 0 || v >= S) throw new Error(`buildBatch: draw row ${v} outside the forward's ${S} positions`);
      logitIndex[r * R + k] = BigInt(v);
    }
  }
  const banned = arena.int64(IN.bannedTokenIds, 1);
  banned[0] = BigInt(handle.maskId);
  const ids = arena.int64(IN.inputIds, B * S);
  const pos = arena.int64(IN.positionIds, B * S);
  const mask = arena.float32(IN.attentionMask, B * S * T);
  mask.fill(MASK_BLOCKED);
  const ps = g.pagePositions;
  const pastK: Float32Array[] = [];
  const pastV: Float32Array[] = [];
  const layerFloats = B * g.kvHeads * P * g.headDim;
  for (let l = 0; l < g.layers; l++) {
    const io = layerIoNames(l);
    pastK.push(arena.float32(io.pastKey, layerFloats));
    pastV.push(arena.float32(io.pastValue, layerFloats));
  }
  for (let r = 0; r < B; r++) {
    const s = specs[r];
    const Sr = s.ids.length;
    for (let i = 0; i < S; i++) {
      // pads repeat the row's last token and position (any valid input: nothing reads their outputs)
      ids[r * S + i] = BigInt(s.ids[Math.min(i, Sr - 1)]);
      pos[r * S + i] = BigInt(s.positions[Math.min(i, Sr - 1)]);
    }
    const pl = s.pastLen;
    const el = s.extra ? s.extra.len : 0;
    for (let i = Sr; i < S; i++) mask[(r * S + i) * T + P + i] = 0; // a pad query sees only itself
    for (let i = 0; i < Sr; i++) {
      const rowBase = (r * S + i) * T;
      // The committed prefix is visible to every new position (earlier positions, earlier blocks).
      mask.fill(0, rowBase, rowBase + pl);
      if (s.extra) {
        for (let j = 0; j < el; j++) {
          if (j >= s.extra.blockedFrom && j < s.extra.blockedTo) continue;
          mask[rowBase + pl + j] = 0;
        }
      }
      for (let k = 0; k < Sr; k++) {
        const ok = s.blockIds === null ? s.positions[k] <= s.positions[i] : s.blockIds[k] <= s.blockIds[i];
        if (ok) mask[rowBase + P + k] = 0;
      }
    }
    // Gather pages into the staging past.
    const pages = s.seq.pageList();
    for (let l = 0; l < g.layers; l++) {
      for (let kv = 0; kv < 2; kv++) {
        const dst = kv === 0 ? pastK[l] : pastV[l];
        for (let h = 0; h < g.kvHeads; h++) {
          const rowOff = (r * g.kvHeads + h) * P * g.headDim;
          for (let k = 0; k * ps < pl; k++) {
            const n = Math.min(ps, pl - k * ps);
            const page = pages[k];
            const src = ((l * 2 + kv) * g.kvHeads + h) * ps * g.headDim;
            dst.set(page.data.subarray(src, src + n * g.headDim), rowOff + k * ps * g.headDim);
          }
          if (s.extra) {
            const e = s.extra;
            const src = ((l * 2 + kv) * g.kvHeads + h) * e.capacity * g.headDim;
            dst.set(e.buf.subarray(src, src + el * g.headDim), rowOff + pl * g.headDim);
          }
        }
      }
    }
  }
  const feeds: Record<string, RunnerTensor> = {
    [IN.inputIds]: { type: 'int64', dims: [B, S], data: ids },
    [IN.positionIds]: { type: 'int64', dims: [B, S], data: pos },
    [IN.attentionMask]: { type: 'float32', dims: [B, 1, S, T], data: mask },
    [IN.logitIndex]: { type: 'int64', dims: [B, R], data: logitIndex },
    [IN.bannedTokenIds]: { type: 'int64', dims: [1], data: banned },
  };
  for (let l = 0; l < g.layers; l++) {
    const io = layerIoNames(l);
    feeds[io.pastKey] = { type: 'float32', dims: [B, g.kvHeads, P, g.headDim], data: pastK[l] };
    feeds[io.pastValue] = { type: 'float32', dims: [B, g.kvHeads, P, g.headDim], data: pastV[l] };
  }
  const fetches: string[] = [];
  if (R > 0) {
    fetches.push(...STAT_FETCHES);
    // Vocabulary-wide rows cross into JS only when a row samples.
    if (specs.some((s) => s.drawRows.length > 0 && s.seq.opts.temperature > 0)) fetches.push(GRAPH_IO.outputs.logits);
  }
  if (specs.some((s) => s.wantKV)) {
    for (let l = 0; l < g.layers; l++) fetches.push(layerIoNames(l).presentKey, layerIoNames(l).presentValue);
  }
  return { feeds, fetches, B, S, P, R };
}
