// Jest test environment for files that call onnxruntime-node in-process. Jest gives each test file
// its own realm, so typed arrays made by the native binding (Node's realm) fail onnxruntime-common's
// `instanceof Float32Array` checks. Sharing Node's typed-array constructors makes both sides agree.
// Use with a docblock: /** @jest-environment ./libs/quant/ort-test-env.js */
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

class OrtTestEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) if (globalThis[name]) this.global[name] = globalThis[name];
  }
}

module.exports = OrtTestEnvironment;
