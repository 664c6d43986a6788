// Jest environment for tests that run onnxruntime-node in the test's own thread.
// onnxruntime-node creates output tensors' typed arrays in Node's main realm while jest runs tests
// in a separate vm context, so `data instanceof Float32Array` fails there
// ("A float32 tensor's data must be type of function Float32Array()"). This environment hands the
// test context the main realm's typed-array constructors. Use it with a docblock:
//   /** @jest-environment ./libs/model/src/testing/ort-environment.js */
const { TestEnvironment } = require('jest-environment-node');

const SHARED = [
  'ArrayBuffer',
  'SharedArrayBuffer',
  'DataView',
  'Float32Array',
  'Float64Array',
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'BigInt64Array',
  'BigUint64Array',
];

class OrtEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) if (globalThis[name]) this.global[name] = globalThis[name];
  }
}

module.exports = OrtEnvironment;
