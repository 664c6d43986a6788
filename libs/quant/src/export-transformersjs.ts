// dllm-farm model directory -> a Hugging Face-style folder that transformers.js
// (@huggingface/transformers, onnxruntime-node) loads with AutoModelForCausalLM/AutoTokenizer, offline.
//
// The served graph (docs/MODEL_FORMAT.md, format dllm-farm/v2) is wrapped, not rebuilt: its weights
// and nodes are kept as they are, so the peer runs exactly the engine's maths. The wrapper changes
// only the I/O signature to the one transformers.js (and Optimum's decoder exports) use:
//   inputs   input_ids int64 [B,S], attention_mask int64 [B,P+S] (1 = attend, 0 = padding),
//            position_ids int64 [B,S], past_key_values.<i>.key/value float [B,Hkv,P,Dh]
//   outputs  logits float [B,S,V], present.<i>.key/value float [B,Hkv,P+S,Dh] (past and new positions)
// Added nodes: the additive float mask [B,1,S,P+S] the served graph takes (causal, query s sees keys
// 0..P+s, padding columns blocked, -1e9 like the engine's MASK_BLOCKED); `logit_index` = 0..S-1 for
// every row (Range + Expand over input_ids' shape), so the v2 LM head runs on every new position;
// identities from past_key_values.<i>.* to the served past inputs; Concat(past, new) for present.<i>.*.
// The v2 statistics outputs (argmax, max_prob, log_sum_exp, entropy) are dropped and the nodes only
// they need are pruned, so `banned_token_ids` (which only the statistics read: `logits` are raw) has no
// reader left; were one left, it would get the MASK token, as the engine passes it.
// Only autoregressive models are exported: transformers.js decodes causally, which a block-diffusion
// model was not trained for. v1 directories are refused with the loader's rebuild message.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { StringStringEntryProtoSchema, externalRef, encodeModel, type NodeProto, type TensorProto } from '@dllm/onnx';
import {
  MODEL_FORMAT,
  ModelDirError,
  ONNX_FILE,
  TOKENIZER_FILE,
  graphInputNames,
  graphOutputNames,
  olderFormatMessage,
  readManifest,
  type Manifest,
} from '@dllm/model';
import { DataType, encodeNode, encodeTensor, encodeValueInfo, loadOnnx, shallowCopy, type NodeSpec } from './onnx';
import { hfConfig } from './export-checkpoint';

/** Value the wrapper writes into the additive mask for blocked keys (the engine's MASK_BLOCKED). */
export const TJS_MASK_BLOCKED = -1e9;

export interface TransformersJsExportResult {
  outDir: string;
  /** files written, relative to outDir. */
  files: string[];
  layers: number;
  /** served-graph nodes dropped because only the statistics outputs needed them. */
  prunedNodes: number;
}

const INNER_MASK = 'dllm_tjs.attention_bias';

/**
 * The nodes of `nodes` that some value of `keep` depends on, in their order. Nodes with subgraph
 * attributes (If, Loop, Scan) read outer values the walk cannot see, so with any of them nothing is dropped.
 */
function liveNodes(nodes: NodeProto[], keep: string[]): NodeProto[] {
  if (nodes.some((n) => n.attribute.some((a) => a.g !== undefined || a.graphs.length > 0))) return nodes;
  const needed = new Set(keep);
  const live = new Set<NodeProto>();
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (!n.output.some((o) => needed.has(o))) continue;
    live.add(n);
    for (const x of n.input) if (x) needed.add(x);
  }
  return nodes.filter((n) => live.has(n));
}

/**
 * The served model.onnx of `modelDir` with the transformers.js decoder I/O signature (see the file
 * comment). Throws when the graph's inputs/outputs are not the dllm-farm/v2 decoder contract, or
 * when its weights live in external data (not supported by this export).
 */
export function wrapForTransformersJs(modelDir: string, m: Manifest): { bytes: Uint8Array; prunedNodes: number } {
  const L = m.architecture.num_layers;
  const Hkv = m.architecture.num_key_value_heads;
  const Dh = m.architecture.head_dim;
  const onnx = loadOnnx(path.join(modelDir, ONNX_FILE));
  if ([...onnx.initializers.values()].some((t) => externalRef(t.proto))) {
    throw new Error(`${modelDir}/model.onnx keeps its weights in external data; the transformers.js export supports inline weights only (under ~1.8 GiB)`);
  }
  const wantIn = graphInputNames(L, MODEL_FORMAT);
  const wantOut = graphOutputNames(L, MODEL_FORMAT);
  const gotIn = onnx.inputs.map((x) => x.name);
  const gotOut = onnx.outputs.map((x) => x.name);
  const same = (a: string[], b: string[]) => a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');
  if (!same(gotIn, wantIn) || !same(gotOut, wantOut)) {
    throw new Error(
      `${modelDir}/model.onnx does not have the ${MODEL_FORMAT} decoder signature the transformers.js export wraps ` +
        `(inputs [${gotIn.join(', ')}], outputs [${gotOut.join(', ')}]; expected inputs [${wantIn.join(', ')}], outputs [${wantOut.join(', ')}])`,
    );
  }
  const maskIn = onnx.inputs.find((x) => x.name === 'attention_mask')!;
  if (maskIn.elemType !== DataType.FLOAT) {
    throw new Error(`${modelDir}/model.onnx: attention_mask is ONNX type ${maskIn.elemType}, expected float (additive mask)`);
  }
  if (onnx.nodes.some((n) => n.outputs.some((o) => o.startsWith('dllm_tjs.')))) {
    throw new Error(`${modelDir}/model.onnx already uses the dllm_tjs. value prefix`);
  }

  // ---- wrapper nodes (before the served nodes: ONNX wants a topological order) -------------------
  const pre: NodeSpec[] = [];
  const post: NodeSpec[] = [];
  const inits: TensorProto[] = [];
  let k = 0;
  const node = (list: NodeSpec[], opType: string, inputs: string[], attrs: NodeSpec['attrs'] = {}, out?: string): string => {
    const o = out ?? `dllm_tjs.v${k}`;
    list.push({ opType, inputs, outputs: [o], name: `dllm_tjs.n${k++}`, attrs });
    return o;
  };
  const i64 = (name: string, values: number[], scalar = false) => {
    inits.push(encodeTensor(name, DataType.INT64, scalar ? [] : [values.length], new BigInt64Array(values.map(BigInt))));
    return name;
  };
  const f32 = (name: string, value: number) => {
    inits.push(encodeTensor(`dllm_tjs.${name}`, DataType.FLOAT, [], new Float32Array([value])));
    return `dllm_tjs.${name}`;
  };
  const zeroS = i64('dllm_tjs.zero', [0], true);
  const oneS = i64('dllm_tjs.one', [1], true);
  const idx1 = i64('dllm_tjs.idx1', [1]);
  const ax0 = i64('dllm_tjs.axes0', [0]);
  const ax1 = i64('dllm_tjs.axes1', [1]);
  const ax12 = i64('dllm_tjs.axes12', [1, 2]);
  const idsShape = node(pre, 'Shape', ['input_ids']); // [2]: B, S
  const S = node(pre, 'Squeeze', [node(pre, 'Gather', [idsShape, idx1], { axis: 0 }), ax0]); // scalar
  const T = node(pre, 'Squeeze', [node(pre, 'Gather', [node(pre, 'Shape', ['attention_mask']), idx1], { axis: 0 }), ax0]); // scalar, P + S
  const P = node(pre, 'Sub', [T, S]);
  const rows = node(pre, 'Unsqueeze', [node(pre, 'Range', [P, T, oneS]), ax1]); // [S,1]: absolute position of each query
  const cols = node(pre, 'Unsqueeze', [node(pre, 'Range', [zeroS, T, oneS]), ax0]); // [1,T]
  const causal = node(pre, 'LessOrEqual', [cols, rows]); // [S,T]
  const keep = node(pre, 'Unsqueeze', [node(pre, 'Cast', ['attention_mask'], { to: 9 /* BOOL */ }), ax12]); // [B,1,1,T]
  const allowed = node(pre, 'And', [keep, causal]); // [B,1,S,T]
  node(pre, 'Where', [allowed, f32('open', 0), f32('blocked', TJS_MASK_BLOCKED)], {}, INNER_MASK);
  // logit_index [B,S]: every new position of every row, 0..S-1.
  node(pre, 'Expand', [node(pre, 'Unsqueeze', [node(pre, 'Range', [zeroS, S, oneS]), ax0]), idsShape], {}, 'logit_index');
  for (let i = 0; i < L; i++) {
    for (const kv of ['key', 'value'] as const) {
      node(pre, 'Identity', [`past_key_values.${i}.${kv}`], {}, `past_${kv}.${i}`);
      node(post, 'Concat', [`past_${kv}.${i}`, `present_${kv}.${i}`], { axis: 2 }, `present.${i}.${kv}`);
    }
  }

  // ---- graph -----------------------------------------------------------------------------------
  const inputs = [
    encodeValueInfo('input_ids', DataType.INT64, ['batch_size', 'sequence_length']),
    encodeValueInfo('attention_mask', DataType.INT64, ['batch_size', 'total_sequence_length']),
    encodeValueInfo('position_ids', DataType.INT64, ['batch_size', 'sequence_length']),
  ];
  const outputs = [encodeValueInfo('logits', DataType.FLOAT, ['batch_size', 'sequence_length', m.vocab_size])];
  for (let i = 0; i < L; i++) {
    for (const kv of ['key', 'value']) {
      inputs.push(encodeValueInfo(`past_key_values.${i}.${kv}`, DataType.FLOAT, ['batch_size', Hkv, 'past_sequence_length', Dh]));
      outputs.push(encodeValueInfo(`present.${i}.${kv}`, DataType.FLOAT, ['batch_size', Hkv, 'total_sequence_length', Dh]));
    }
  }
  const g = onnx.proto.graph!;
  const served = liveNodes(g.node, ['logits', ...Array.from({ length: L }, (_, i) => [`present_key.${i}`, `present_value.${i}`]).flat()]);
  const renamed = served.map((n) =>
    n.input.includes('attention_mask') ? shallowCopy(n, { input: n.input.map((x) => (x === 'attention_mask' ? INNER_MASK : x)) }) : n,
  );
  if (renamed.some((n) => n.input.includes('banned_token_ids'))) i64('banned_token_ids', [m.tokens.mask]);
  const used = new Set([...pre, ...post].flatMap((n) => n.inputs).concat(renamed.flatMap((n) => n.input)));
  const graph = shallowCopy(g, {
    node: [...pre.map(encodeNode), ...renamed, ...post.map(encodeNode)],
    initializer: [...g.initializer.filter((t) => used.has(t.name)), ...inits],
    input: inputs,
    output: outputs,
    valueInfo: [],
  });
  const metadataProps = [...onnx.proto.metadataProps, create(StringStringEntryProtoSchema, { key: 'dllm-farm.export', value: 'transformers.js' })];
  return { bytes: encodeModel(shallowCopy(onnx.proto, { graph, metadataProps })), prunedNodes: g.node.length - served.length };
}

/**
 * Writes `outDir` as a folder transformers.js loads offline (`env.allowRemoteModels = false`,
 * `env.localModelPath` = its parent, or `local_files_only`):
 *   config.json (model_type qwen2, the checkpoint export's fields), generation_config.json (eos, pad,
 *   bos, greedy, the MASK token banned as the engine bans it), tokenizer.json (the model's own) and
 *   tokenizer_config.json, onnx/model.onnx (the served graph with the transformers.js I/O signature).
 * Refuses block-diffusion models (transformers.js decodes them causally, which they were not trained
 * for), models with external-data weights, and dllm-farm/v1 directories (a ModelDirError with the
 * loader's rebuild message: export + convert).
 */
export function exportTransformersJs(modelDir: string, outDir: string): TransformersJsExportResult {
  const m = readManifest(modelDir);
  if (m.format !== MODEL_FORMAT) throw new ModelDirError(path.resolve(modelDir), olderFormatMessage(m.format, modelDir));
  if (m.kind !== 'autoregressive') {
    throw new Error(
      `${modelDir} is a ${m.kind} model; transformers.js would decode it left to right with a causal mask it was not trained on. ` +
        'Export an autoregressive model.',
    );
  }
  const { bytes, prunedNodes } = wrapForTransformersJs(modelDir, m);
  fs.mkdirSync(path.join(outDir, 'onnx'), { recursive: true });
  const files: string[] = [];
  const write = (rel: string, data: string | Uint8Array) => {
    fs.writeFileSync(path.join(outDir, rel), data);
    files.push(rel);
  };
  write(path.join('onnx', 'model.onnx'), bytes);
  const config = { ...hfConfig(m), 'transformers.js_config': { dtype: 'fp32' } };
  write('config.json', JSON.stringify(config, null, 2) + '\n');
  const gen = {
    ...(m.tokens.bos !== undefined ? { bos_token_id: m.tokens.bos } : {}),
    eos_token_id: m.tokens.eos,
    pad_token_id: m.tokens.pad,
    do_sample: false,
    // The engine never draws MASK (sampling's `banned`); the same rule keeps greedy outputs identical.
    bad_words_ids: [[m.tokens.mask]],
  };
  write('generation_config.json', JSON.stringify(gen, null, 2) + '\n');
  const tokJson = fs.readFileSync(path.join(modelDir, TOKENIZER_FILE), 'utf8');
  write(TOKENIZER_FILE, tokJson);
  const tok = JSON.parse(tokJson) as { added_tokens?: { id: number; content: string }[] };
  const tokenName = (id: number | undefined) => (id === undefined ? null : (tok.added_tokens?.find((t) => t.id === id)?.content ?? null));
  const tokConfig = {
    tokenizer_class: 'PreTrainedTokenizer',
    model_max_length: m.architecture.max_position_embeddings,
    bos_token: tokenName(m.tokens.bos),
    eos_token: tokenName(m.tokens.eos),
    pad_token: tokenName(m.tokens.pad),
    mask_token: tokenName(m.tokens.mask),
    add_bos_token: false,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
  };
  write('tokenizer_config.json', JSON.stringify(tokConfig, null, 2) + '\n');
  return { outDir, files, layers: m.architecture.num_layers, prunedNodes };
}
