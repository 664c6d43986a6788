// Messages between EngineThread (the caller's thread) and engine-host.ts (the engine's worker thread).
// Only admissions, cancels, block events, results, swaps and stats snapshots cross; never a forward.
import type { EngineCreateOptions, EngineStats, GenerateRequest } from './engine';
import type { EngineManifest } from './model-dir';
import type { DecodeOptions } from './options';
import type { BlockEvent } from './emission';
import type { GenerationResult } from './sequence';

export interface ModelInfo {
  name: string;
  version: string;
  kind: string;
  manifest: EngineManifest;
  /** The manifest's decode_defaults as engine options, checked once at load (ModelHandle.decodeDefaults). */
  decodeDefaults: Partial<DecodeOptions>;
}

/** An error as it crosses threads: RangeError (bad request) stays a RangeError on the other side. */
export interface WireError {
  name: string;
  message: string;
}

export type ToHost =
  | { t: 'generate'; id: number; req: GenerateRequest; aborted: boolean; blocks: boolean }
  | { t: 'cancel'; id: number }
  | { t: 'swap'; id: number; modelDir: string }
  | { t: 'close' };

export type FromHost =
  | { t: 'ready'; model: ModelInfo; pageBytes: number; stats: EngineStats }
  | { t: 'init-error'; error: WireError }
  | { t: 'block'; id: number; event: BlockEvent }
  | { t: 'result'; id: number; result: GenerationResult; stats: EngineStats }
  | { t: 'error'; id: number; error: WireError; stats: EngineStats }
  | { t: 'swapped'; id: number; model: ModelInfo; pageBytes: number; stats: EngineStats }
  | { t: 'stats'; stats: EngineStats }
  | { t: 'closed' };

/** workerData of the engine's worker thread. */
export type HostOptions = Omit<EngineCreateOptions, 'thread'>;

export function toWire(e: unknown): WireError {
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message };
}

export function fromWire(w: WireError): Error {
  const e = w.name === 'RangeError' ? new RangeError(w.message) : w.name === 'TypeError' ? new TypeError(w.message) : new Error(w.message);
  if (e.name !== w.name) e.name = w.name;
  return e;
}
