// Quantize a whole dllm-farm model directory: same format, same tokenizer, a new model.onnx whose
// linear layers are quantized, and a manifest that records the quantization and carries a version
// the engine's pool can tell apart from the float model's.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { captureActivations, calibrationTexts } from './activations';
import { HessianAccumulator, gptqBlockwise } from './gptq';
import { MANIFEST_FILE, ONNX_FILE, readManifest, readManifestFile } from '@dllm/model';
import { externalRef } from '@dllm/onnx';
import { loadOnnx, writeOnnx, type OnnxModel } from './onnx';
import {
  type LayerReport,
  type QuantizationRecord,
  type QuantizeOptions,
  type WeightQuantizer,
  SCHEME_BITS,
  findLinears,
  planQuantization,
  quantizationRecordSchema,
  resolveQuantizeOptions,
  rtnQuantizer,
  versionSuffix,
} from './quantize';

export interface QuantizeDirResult {
  outDir: string;
  version: string;
  record: QuantizationRecord;
  layers: LayerReport[];
  /** bytes of model.onnx (+ external data) before and after. */
  sizeIn: number;
  sizeOut: number;
}

/** The quantization a model directory's manifest records, or null for a float model. */
export function manifestQuantization(dir: string): QuantizationRecord | null {
  const q = readManifest(dir).quantization;
  if (q === undefined || q === null) return null;
  const r = quantizationRecordSchema.safeParse(q);
  if (!r.success)
    throw new Error(`${path.join(dir, MANIFEST_FILE)}: invalid quantization: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

export interface CalibrationOptions {
  /** task families for calibration text (train split); default arith, string. */
  families?: string[];
  perFamily?: number;
  seed?: number;
}

export interface QuantizeDirOptions {
  force?: boolean;
  /** GPTQ calibration (ignored by rtn). */
  calibration?: CalibrationOptions;
  log?: (line: string) => void;
}

/** GPTQ: one calibration pass collects H = 2 X^T X per linear input, then each weight is quantized against it. */
export async function gptqQuantizer(modelDir: string, model: OnnxModel, c: CalibrationOptions = {}, log?: (line: string) => void): Promise<WeightQuantizer> {
  const texts = calibrationTexts(c.families ?? ['arith', 'string'], c.perFamily ?? 32, c.seed ?? 1);
  const acc = new Map<string, HessianAccumulator>();
  for (const l of findLinears(model)) if (!acc.has(l.node.inputs[0])) acc.set(l.node.inputs[0], new HessianAccumulator(l.K));
  log?.(`calibrating on ${texts.length} texts (${acc.size} linear inputs)`);
  await captureActivations(modelDir, [...acc.keys()], texts, (t, data) => acc.get(t)!.add(data), { model });
  const hessians = new Map<string, Float64Array>();
  return (layer, w, opts) => {
    if (opts.scheme === 'int8' && opts.int8Kernel === 'dequantize') return rtnQuantizer(layer, w, opts);
    const tensor = layer.node.inputs[0];
    let H = hessians.get(tensor);
    if (!H) {
      H = acc.get(tensor)!.hessian();
      hessians.set(tensor, H);
    }
    log?.(`gptq ${layer.weight} [${layer.K}x${layer.N}]`);
    return { kind: 'block', q: gptqBlockwise(w, layer.K, layer.N, H, { bits: SCHEME_BITS[opts.scheme], blockSize: opts.groupSize }) };
  };
}

export async function quantizeModelDir(
  srcDir: string,
  outDir: string,
  options: QuantizeOptions,
  { force = false, calibration, log }: QuantizeDirOptions = {},
): Promise<QuantizeDirResult> {
  const opts = resolveQuantizeOptions(options);
  const src = path.resolve(srcDir);
  const out = path.resolve(outDir);
  const { manifest, raw } = readManifestFile(src);
  if (manifest.quantization) throw new Error(`${src} is already quantized (${JSON.stringify(manifest.quantization)}); quantize the float model instead`);
  if (out === src) throw new Error('the output directory must differ from the model directory');
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0 && !force) throw new Error(`output directory ${out} is not empty (pass --force to overwrite)`);
  const onnxPath = path.join(src, ONNX_FILE);
  if (!fs.existsSync(onnxPath)) throw new Error(`model directory has no model.onnx: ${src}`);

  const model = loadOnnx(onnxPath);
  const quantizer = opts.method === 'gptq' ? await gptqQuantizer(src, model, calibration, log) : rtnQuantizer;
  const plan = planQuantization(model, options, quantizer);
  // The external data files the source names are not copied: writeOnnx copies the ranges that stay.
  const externalFiles = new Set<string>();
  for (const t of model.initializers.values()) {
    const r = externalRef(t.proto);
    if (r) externalFiles.add(r.location);
  }
  const skip = new Set([ONNX_FILE, `${ONNX_FILE}.data`, MANIFEST_FILE, ...externalFiles]);
  fs.mkdirSync(out, { recursive: true });
  for (const entry of fs.readdirSync(src)) {
    if (skip.has(entry)) continue;
    fs.cpSync(path.join(src, entry), path.join(out, entry), { recursive: true });
  }
  for (const f of skip) if (fs.existsSync(path.join(out, f))) fs.rmSync(path.join(out, f));
  // A source with external data (large models: protobuf caps a model at 2 GiB) gives an output with external data.
  const written = writeOnnx(model, plan.edit, path.join(out, ONNX_FILE), { externalData: externalFiles.size > 0 });
  model.reader.close();
  const version = `${manifest.version}+${versionSuffix(plan.record)}`;
  // Written over the manifest as it was on disk, so keys this schema does not know are kept.
  const next: Record<string, unknown> = { ...raw, version, quantization: plan.record };
  if (manifest.graph) next.graph = { ...(raw.graph as object), external_data: written.dataFile ? path.basename(written.dataFile) : null };
  fs.writeFileSync(path.join(out, MANIFEST_FILE), `${JSON.stringify(next, null, 2)}\n`);
  const sizeIn = fs.statSync(onnxPath).size + [...externalFiles].reduce((n, f) => n + fs.statSync(path.join(src, f)).size, 0);
  return { outDir: out, version, record: plan.record, layers: plan.layers, sizeIn, sizeOut: written.bytes };
}
