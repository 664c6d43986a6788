// The contract between the scheduler (engine.ts, batch.ts) and one request (sequence.ts): the model a
// request decodes with, the forward it asks for, and the row of outputs it gets back.
import type { KvGeometry } from './kv/pool';
import type { ModelRunner } from './runner/runner';
import type { EngineManifest, TextCodec } from './model-dir';
import type { DecodeOptions } from './options';
import type { Sequence } from './sequence';

/** A loaded model version. Sequences hold the handle they started on (hot swap keeps it alive). */
export interface ModelHandle {
  id: number;
  name: string;
  version: string;
  kind: string;
  manifest: EngineManifest;
  /** Key namespace in the KV pool: pages of different versions never mix. */
  namespace: string;
  runner: ModelRunner;
  codec: TextCodec;
  geometry: KvGeometry;
  vocabSize: number;
  maskId: number;
  eosId: number;
  delimiters: ReadonlySet<number>;
  /** Positions the model supports (manifest architecture.max_position_embeddings; Infinity when unknown). */
  maxPositions: number;
  /** The manifest's decode_defaults as engine options (checked at load; {} when none). */
  decodeDefaults: Partial<DecodeOptions>;
  /** Sequences admitted on this handle and not finished. */
  active: number;
  retired: boolean;
}

/** The sub-block cache's kept window as extra past after the pages, with the stale slots [blockedFrom, blockedTo) blocked. */
export interface ExtraPast {
  /** [layers, 2, Hkv, capacity, Dh] float32 (KeptWindow layout). */
  buf: Float32Array;
  capacity: number;
  /** Window slots that hold K/V. */
  len: number;
  blockedFrom: number;
  blockedTo: number;
}

/** One row of a batched forward, as a sequence asks for it (`Sequence.nextForward`). */
export interface ForwardSpec {
  seq: Sequence;
  kind: 'prefill' | 'window' | 'sub' | 'commit' | 'ar';
  ids: number[];
  positions: number[];
  /** Block id per new token (block-causal among new tokens); null = causal. */
  blockIds: number[] | null;
  /** Past = this sequence's pages over positions [0, pastLen). */
  pastLen: number;
  /** Extra past after the pages: the kept window K/V of the sub-block cache, with the stale slots blocked. */
  extra: ExtraPast | null;
  /**
   * The new positions (0..S-1, ascending) this row draws from: the graph's `logit_index` row. Only
   * these get logits and statistics (format v2); empty for KV-only forwards (no LM head at all).
   */
  drawRows: number[];
  wantKV: boolean;
}

/** The draw head's outputs of one forward, for R drawn positions per row (batch.ts pads rows to R). */
export interface DrawOutputs {
  R: number;
  V: number;
  /** [B,R] each: the in-graph statistics (MASK banned). */
  argmax: BigInt64Array;
  maxProb: Float32Array;
  entropy: Float32Array;
  /** [B,R,V] raw logits; fetched only when a row of the batch samples (temperature > 0). */
  logits: Float32Array | null;
}

/** What one row gets back from a batched forward (`Sequence.onOutput`). */
export interface RowOutput {
  /** Draw statistics (and logits when fetched) of the whole batch; null when no row draws. */
  draws: DrawOutputs | null;
  /** present_key.<l> / present_value.<l> [B,Hkv,S,Dh] per layer, and the row. */
  presentK: Float32Array[] | null;
  presentV: Float32Array[] | null;
  row: number;
  /** The batch's S (rows shorter than it are padded: present K/V rows are S apart). */
  S: number;
}
