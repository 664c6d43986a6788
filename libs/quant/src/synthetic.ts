// Small ONNX models made of linear layers, for tests and kernel microbenchmarks. Real dllm-farm
// models come from libs/model; these only need the quantizer's view of a model (MatMul on constant
// weights) and something onnxruntime can run.
import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, encodeModel, modelProto, type NodeProto, type TensorProto } from '@dllm/onnx';
import { normalFloats } from '@dllm/prng';
import { DataType, type NodeSpec, encodeNode, encodeTensor, encodeValueInfo } from './onnx';

export interface SyntheticLayer {
  name: string;
  K: number;
  N: number;
  w: Float32Array;
}

export interface SyntheticModelSpec {
  /** the first layer's K is the input width. */
  layers: SyntheticLayer[];
  /** activation between layers: Relu keeps it a real network rather than one product. */
  activation?: 'Relu' | 'none';
  opset?: number;
  /** name of the graph output (the last layer writes it). */
  output?: string;
}

/** x [M, K0] -> MatMul -> (Relu) -> MatMul ... -> output [M, N_last]. */
export function buildLinearStack(spec: SyntheticModelSpec): Uint8Array {
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  let cur = 'x';
  const out = spec.output ?? 'logits';
  spec.layers.forEach((l, i) => {
    if (l.w.length !== l.K * l.N) throw new Error(`layer ${l.name}: weight size`);
    inits.push(encodeTensor(l.name, DataType.FLOAT, [l.K, l.N], l.w));
    const last = i === spec.layers.length - 1;
    const y = last ? out : `${l.name}.out`;
    const mm: NodeSpec = { opType: 'MatMul', inputs: [cur, l.name], outputs: [y], name: `${l.name}.matmul` };
    nodes.push(encodeNode(mm));
    cur = y;
    if (!last && spec.activation !== 'none') {
      nodes.push(encodeNode({ opType: 'Relu', inputs: [y], outputs: [`${l.name}.act`], name: `${l.name}.relu` }));
      cur = `${l.name}.act`;
    }
  });
  const g = create(GraphProtoSchema, {
    node: nodes,
    name: 'synthetic',
    initializer: inits,
    input: [encodeValueInfo('x', DataType.FLOAT, ['M', spec.layers[0].K])],
    output: [encodeValueInfo(out, DataType.FLOAT, ['M', spec.layers[spec.layers.length - 1].N])],
  });
  return encodeModel(modelProto(g, [['', spec.opset ?? 17]], {}, 'dllm-farm-quant-synthetic', ''));
}

/** Deterministic pseudo-normal weights N(0, std^2) of shape [K, N] (xorshift32 + Box-Muller, see @dllm/prng normalFloats). */
export function randomWeights(K: number, N: number, seed: number, std = 0.05): Float32Array {
  return normalFloats(K * N, seed, std);
}
