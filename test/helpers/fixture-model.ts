// A real (tiny) model directory for worker/cluster tests when the trained bundled model is absent:
// a Qwen2-style decoder built by libs/model (a real ONNX graph run by onnxruntime) whose weights
// make it a deterministic function of the input: every token t predicts the digit (t mod 10), with
// a clear margin. It never predicts EOS, so generation runs to maxNewTokens: long jobs on demand
// (the SIGKILL test needs one), and different prompts give different outputs (batching mix-ups show).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildTinyModel } from '@dllm/model';

export const BUNDLED_MODEL_DIR = path.resolve(__dirname, '../../models/tiny-dllm');
const V = 128;
const DIGIT0 = 4 + ('0'.charCodeAt(0) - 32); // 4 specials, then printable ASCII from ' '

/** Writes the fixture model into `dir` (default: a new temp dir) and returns the dir. */
export function writeFixtureModel(opts: { name?: string; version?: string; dir?: string; blockSize?: number } = {}): string {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-fixture-model-'));
  const eye = new Float32Array(V * V);
  for (let i = 0; i < V; i++) eye[i * V + i] = 1;
  const head = new Float32Array(V * V); // [vocab, hidden]: row (digit of t) has a 1 at column t
  for (let t = 0; t < V; t++) head[(DIGIT0 + (t % 10)) * V + t] = 1;
  buildTinyModel(dir, {
    config: {
      vocab_size: V,
      hidden_size: V,
      intermediate_size: 8,
      num_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      head_dim: 8,
      max_position_embeddings: 4096,
    },
    weights: { 'model.embed_tokens.weight': eye, 'lm_head.weight': head },
    manifest: { name: opts.name ?? 'fixture', version: opts.version ?? '1', kind: 'block-diffusion', block_size: opts.blockSize ?? 8 },
  });
  return dir;
}

/** The bundled model when it has been trained into models/tiny-dllm, else a fresh fixture. */
export function testModelDir(): { dir: string; bundled: boolean } {
  if (fs.existsSync(path.join(BUNDLED_MODEL_DIR, 'dllm.json')) && fs.existsSync(path.join(BUNDLED_MODEL_DIR, 'model.onnx')))
    return { dir: BUNDLED_MODEL_DIR, bundled: true };
  return { dir: writeFixtureModel(), bundled: false };
}

/**
 * Always the fixture model: for tests that need long jobs of a known length (it never stops early),
 * whatever the bundled model does (it stops at EOS after a few dozen tokens).
 */
export function fixtureModelDir(): { dir: string; bundled: boolean } {
  return { dir: writeFixtureModel(), bundled: false };
}
