// worker_threads entry for OrtRunner (plain CommonJS: Node 20 and jest cannot start a worker from .ts).
// Inputs arrive as the engine's staging buffers by transfer (no copy) and go back with the result;
// outputs are ORT's own copies, transferred back (no second copy).
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
const ort = require('onnxruntime-node');

let session = null;

function meta(list) {
  return (list || []).map((m) => ({ name: m.name, isTensor: m.isTensor, type: m.type, shape: m.shape }));
}

async function start() {
  const providers = workerData.executionProvider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'];
  const opts = { executionProviders: providers, graphOptimizationLevel: 'all' };
  if (workerData.intraOpThreads) opts.intraOpNumThreads = workerData.intraOpThreads;
  opts.interOpNumThreads = 1;
  opts.logSeverityLevel = workerData.logSeverityLevel ?? 2;
  session = await ort.InferenceSession.create(workerData.modelPath, opts);
  parentPort.postMessage({
    type: 'ready',
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    inputMetadata: meta(session.inputMetadata),
    outputMetadata: meta(session.outputMetadata),
  });
}

parentPort.on('message', async (msg) => {
  if (msg.type === 'run') {
    try {
      const feeds = {};
      for (const name of Object.keys(msg.feeds)) {
        const f = msg.feeds[name];
        feeds[name] = new ort.Tensor(f.type, f.data, f.dims);
      }
      const t0 = performance.now();
      const out = await session.run(feeds, msg.fetches);
      const runMs = performance.now() - t0;
      const outputs = {};
      const transfer = [];
      for (const name of msg.fetches) {
        const t = out[name];
        let data = t.data;
        if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength) data = data.slice();
        outputs[name] = { type: t.type, dims: Array.from(t.dims), data };
        transfer.push(data.buffer);
      }
      // Hand the engine's staging buffers back (they came here by transfer).
      const inputs = {};
      for (const name of Object.keys(msg.feeds)) {
        const d = msg.feeds[name].data;
        inputs[name] = d;
        if (d.buffer.byteLength > 0 && !transfer.includes(d.buffer)) transfer.push(d.buffer);
      }
      parentPort.postMessage({ type: 'result', id: msg.id, outputs, inputs, runMs }, transfer);
    } catch (err) {
      const inputs = {};
      const transfer = [];
      for (const name of Object.keys(msg.feeds || {})) {
        const d = msg.feeds[name].data;
        inputs[name] = d;
        if (d.buffer.byteLength > 0 && !transfer.includes(d.buffer)) transfer.push(d.buffer);
      }
      parentPort.postMessage({ type: 'result', id: msg.id, error: String((err && err.message) || err), inputs }, transfer);
    }
  } else if (msg.type === 'close') {
    try {
      if (session) await session.release();
    } finally {
      parentPort.postMessage({ type: 'closed' });
    }
  }
});

start().catch((err) => parentPort.postMessage({ type: 'error', error: String((err && err.message) || err) }));
