// What the engine needs from a model directory (read through libs/model: manifest, ONNX path, tokenizer).
import { loadModelDir } from '@dllm/model';

/** The manifest fields the engine reads (libs/model's Manifest satisfies it). */
export interface EngineManifest {
  name: string;
  version: string;
  kind: string;
  block_size: number;
  tokens: { mask: number; eos: number; pad: number; bos?: number };
  delimiter_token_ids?: number[];
  [k: string]: unknown;
}

export interface TextCodec {
  encode(text: string): number[];
  /** Special tokens are skipped. */
  decode(ids: readonly number[]): string;
}

export interface LoadedModelDir {
  dir: string;
  manifest: EngineManifest;
  onnxPath: string;
  codec: TextCodec;
}

export async function loadEngineModelDir(dir: string): Promise<LoadedModelDir> {
  const m = await loadModelDir(dir);
  return { dir: m.dir, manifest: m.manifest as unknown as EngineManifest, onnxPath: m.onnxPath, codec: m.tokenizer };
}
