// What the engine needs from a model directory, read through libs/model (the one model directory
// reader: manifest, graph contract, ONNX path, tokenizer).
import { loadModelDir, type DecodeManifest } from '@dllm/model';

/** The manifest fields the engine reads: libs/model's DecodeManifest (every Manifest is one). */
export type EngineManifest = DecodeManifest;

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
  return { dir: m.dir, manifest: m.manifest, onnxPath: m.onnxPath, codec: m.tokenizer };
}
