// Public API of the model library: the model directory format (manifest, loader, tokenizer),
// safetensors, the ONNX writer and the Qwen2-style decoder graph builder, convert, tiny models.
export * from './manifest';
export * from './model-dir';
export * from './tokenizer';
export * from './safetensors';
export * from './builder';
export * from './logit-head';
export * from './convert';
export * from './tiny';
export { OnnxGraph, BuiltModel, writeChunks, TensorType, inspectOnnx, tensorProto, nodeProto, attributeProto, valueInfoProto } from './onnx';
export type { AttrValue, Dim, ExternalRef, IoSpec, OnnxIo, OnnxSummary, TensorTypeId } from './onnx';
