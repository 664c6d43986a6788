// loadModelDir: open and validate a dllm-farm model directory (docs/MODEL_FORMAT.md).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { InferenceSession } from 'onnxruntime-node';
import { MODEL_FORMAT, graphInputNames, graphOutputNames, layerIoNames, parseManifest, type Manifest } from './manifest';
import { inspectOnnx, TensorType, type OnnxIo, type OnnxSummary } from './onnx';
import { Tokenizer } from './tokenizer';

export const MANIFEST_FILE = 'dllm.json';
export const ONNX_FILE = 'model.onnx';
export const TOKENIZER_FILE = 'tokenizer.json';

export interface ModelDir {
  dir: string;
  manifest: Manifest;
  onnxPath: string;
  /** external weight files the graph names (absolute paths). */
  externalDataPaths: string[];
  tokenizerPath: string;
  tokenizer: Tokenizer;
  graph: OnnxSummary;
  /** Only when asked with `{ session: true }`. */
  session?: InferenceSession;
}

export interface LoadOptions {
  /** Also open an onnxruntime-node InferenceSession (the engine opens its own in a worker). */
  session?: boolean;
  sessionOptions?: InferenceSession.SessionOptions;
  /** Accept a directory of an older format (export reads one back out to rebuild it); default false. */
  allowOlderFormat?: boolean;
}

/** What to tell the owner of a model directory in an older format. */
export function olderFormatMessage(format: string, dir = '<model-dir>'): string {
  return (
    `model format ${format} is older than ${MODEL_FORMAT}, which this version runs (the v2 graph computes logits only where the decoder draws, ` +
    `and the draw statistics in the graph); rebuild it from its own weights: dllm-farm export ${dir} /tmp/ckpt && ` +
    `dllm-farm convert /tmp/ckpt ${dir} --name <name> --version <version> --kind <kind> (docs/MODEL_FORMAT.md)`
  );
}

export class ModelDirError extends Error {
  constructor(
    readonly dir: string,
    message: string,
  ) {
    super(`model directory ${dir}: ${message}`);
    this.name = 'ModelDirError';
  }
}

/** Checks the graph's I/O against the manifest. Returns problems (empty when fine). */
export function checkGraphContract(g: OnnxSummary, m: Manifest): string[] {
  const problems: string[] = [];
  const L = m.architecture.num_layers;
  const inNames = new Map(g.inputs.map((i) => [i.name, i]));
  const outNames = new Map(g.outputs.map((o) => [o.name, o]));
  const missingIn = graphInputNames(L, m.format).filter((n) => !inNames.has(n));
  const missingOut = graphOutputNames(L, m.format).filter((n) => !outNames.has(n));
  if (missingIn.length) problems.push(`graph lacks input(s) ${missingIn.join(', ')} (manifest says ${L} layers)`);
  if (missingOut.length) problems.push(`graph lacks output(s) ${missingOut.join(', ')} (manifest says ${L} layers)`);
  const extraIn = g.inputs.map((i) => i.name).filter((n) => !graphInputNames(L, m.format).includes(n));
  if (extraIn.length) problems.push(`graph has unexpected input(s) ${extraIn.join(', ')} (manifest says ${L} layers)`);
  const want = (name: string, elem: number, io: Map<string, OnnxIo>, dims: Record<number, number>, rank: number) => {
    const v = io.get(name);
    if (!v) return;
    if (v.elemType !== elem) problems.push(`${name} has element type ${v.elemType}, expected ${elem === TensorType.FLOAT ? 'float32 (1)' : 'int64 (7)'}`);
    if (!v.shape) return;
    if (v.shape.length && v.shape.length !== rank) problems.push(`${name} has rank ${v.shape.length}, expected ${rank}`);
    for (const [axis, size] of Object.entries(dims)) {
      const d = v.shape[Number(axis)];
      if (typeof d === 'number' && d !== size) problems.push(`${name} dimension ${axis} is ${d}, expected ${size}`);
    }
  };
  want('input_ids', TensorType.INT64, inNames, {}, 2);
  want('position_ids', TensorType.INT64, inNames, {}, 2);
  want('attention_mask', TensorType.FLOAT, inNames, { 1: 1 }, 4);
  want('logits', TensorType.FLOAT, outNames, { 2: m.vocab_size }, 3);
  if (m.format !== 'dllm-farm/v1') {
    want('logit_index', TensorType.INT64, inNames, {}, 2);
    want('banned_token_ids', TensorType.INT64, inNames, {}, 1);
    want('argmax', TensorType.INT64, outNames, {}, 2);
    for (const n of ['max_prob', 'log_sum_exp', 'entropy']) want(n, TensorType.FLOAT, outNames, {}, 2);
  }
  const a = m.architecture;
  for (let i = 0; i < L; i++) {
    const n = layerIoNames(i);
    for (const name of [n.pastKey, n.pastValue]) want(name, TensorType.FLOAT, inNames, { 1: a.num_key_value_heads, 3: a.head_dim }, 4);
    for (const name of [n.presentKey, n.presentValue]) want(name, TensorType.FLOAT, outNames, { 1: a.num_key_value_heads, 3: a.head_dim }, 4);
  }
  return problems;
}

/**
 * Reads and validates a model directory's manifest (dllm.json) only: no graph, tokenizer or weight
 * checks. Returns the parsed manifest and the JSON object as written (with any keys the schema does
 * not know, for tools that rewrite the manifest). Throws a ModelDirError saying what is wrong.
 */
export function readManifestFile(dir: string): { manifest: Manifest; raw: Record<string, unknown> } {
  const abs = path.resolve(dir);
  const fail = (msg: string): never => {
    throw new ModelDirError(abs, msg);
  };
  if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) fail('does not exist or is not a directory');
  const manifestPath = path.join(abs, MANIFEST_FILE);
  if (!fs.existsSync(manifestPath)) fail(`missing ${MANIFEST_FILE} (the manifest)`);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  } catch (e) {
    fail(`${MANIFEST_FILE} is not valid JSON (${(e as Error).message})`);
  }
  let manifest!: Manifest;
  try {
    manifest = parseManifest(raw, MANIFEST_FILE);
  } catch (e) {
    fail((e as Error).message);
  }
  return { manifest, raw: raw as Record<string, unknown> };
}

/** The validated manifest of a model directory (see readManifestFile). */
export function readManifest(dir: string): Manifest {
  return readManifestFile(dir).manifest;
}

/**
 * Validates a model directory: the manifest (schema, token ids inside the vocabulary), the files,
 * the graph's input/output names and shapes (read from the ONNX header, weights are not read),
 * the external data files and the tokenizer. Throws a ModelDirError saying what is wrong.
 */
export async function loadModelDir(dir: string, opts: LoadOptions = {}): Promise<ModelDir> {
  const abs = path.resolve(dir);
  const fail = (msg: string): never => {
    throw new ModelDirError(abs, msg);
  };
  const { manifest } = readManifestFile(abs); // also says when the directory does not exist
  if (manifest.format !== MODEL_FORMAT && !opts.allowOlderFormat) fail(olderFormatMessage(manifest.format, dir));
  const onnxPath = path.join(abs, ONNX_FILE);
  if (!fs.existsSync(onnxPath)) fail(`missing ${ONNX_FILE}`);
  const tokenizerPath = path.join(abs, TOKENIZER_FILE);
  if (!fs.existsSync(tokenizerPath)) fail(`missing ${TOKENIZER_FILE}`);

  let graph!: OnnxSummary;
  try {
    graph = inspectOnnx(onnxPath);
  } catch (e) {
    fail(`${ONNX_FILE} is not a readable ONNX model (${(e as Error).message})`);
  }
  const problems = checkGraphContract(graph, manifest);
  if (problems.length) fail(`${ONNX_FILE} breaks the graph contract: ${problems.join('; ')}`);
  const externalDataPaths = graph.externalFiles.map((f) => path.join(abs, f));
  for (const f of externalDataPaths) if (!fs.existsSync(f)) fail(`${ONNX_FILE} keeps its weights in ${path.basename(f)}, which is missing`);

  let tokenizer!: Tokenizer;
  try {
    tokenizer = Tokenizer.fromFile(tokenizerPath);
  } catch (e) {
    fail((e as Error).message);
  }
  if (tokenizer.vocabSize > manifest.vocab_size)
    fail(`${TOKENIZER_FILE} has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${manifest.vocab_size}`);

  const out: ModelDir = { dir: abs, manifest, onnxPath, externalDataPaths, tokenizerPath, tokenizer, graph };
  if (opts.session) {
    const ort = await import('onnxruntime-node');
    out.session = await ort.InferenceSession.create(onnxPath, opts.sessionOptions ?? {});
  }
  return out;
}
