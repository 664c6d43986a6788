// Public API of weight-only quantization (int8, int4, int3) and activation inspection.
export * from './rtn';
export * from './quantize';
export {
  parseOnnx,
  loadOnnx,
  onnxModelView,
  editOnnx,
  rewriteOnnx,
  writeOnnx,
  floatTensor,
  tensorBytes,
  encodeNode,
  encodeTensor,
  encodeValueInfo,
  DataType,
} from './onnx';
export type { OnnxModel, OnnxNode, OnnxTensorInfo, OnnxValueInfo, NodeSpec, GraphEdit } from './onnx';
export { buildLinearStack, randomWeights } from './synthetic';
export type { SyntheticLayer, SyntheticModelSpec } from './synthetic';
export * from './model-dir';
export * from './activations';
export { HessianAccumulator, gptqBlockwise, cholesky, inverseCholeskyUpper } from './gptq';
export type { GptqOptions } from './gptq';
export { exportCheckpoint, hfConfig } from './export-checkpoint';
export type { ExportResult } from './export-checkpoint';
export { exportTransformersJs, wrapForTransformersJs, TJS_MASK_BLOCKED } from './export-transformersjs';
export type { TransformersJsExportResult } from './export-transformersjs';
