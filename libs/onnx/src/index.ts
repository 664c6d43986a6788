// Public API of the ONNX library: the messages generated from onnx.proto (@bufbuild/protobuf v2),
// builders for the ones dllm-farm writes, model file read/write, and external data by byte ranges.
// libs/model (convert, graph builder, model directory) and libs/quant (graph rewriting) both use it.
export * from './gen/onnx_pb';
export * from './build';
export * from './io';
