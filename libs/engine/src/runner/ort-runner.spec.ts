// The ORT runner on a real (tiny) ONNX graph: worker thread, zero-copy SharedArrayBuffer feeds,
// transferred outputs; and the same results as the TypeScript model of the same graph.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Engine } from '../engine';
import type { EngineManifest } from '../model-dir';
import { charCodec, CountingRunner } from '../testing/counting-runner';
import { countingModelOnnx } from '../testing/counting-onnx';
import { OrtRunner, StagingArena } from './ort-runner';

const spec = { vocabSize: 14, table: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], margins: [5, 2, 2], maskId: 11 };
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-engine-ort-'));
  fs.writeFileSync(path.join(dir, 'model.onnx'), countingModelOnnx(spec));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('OrtRunner', () => {
  it('reads the geometry from the graph and runs in a worker with transferred (zero-copy) feeds', async () => {
    const r = await OrtRunner.create({ modelPath: path.join(dir, 'model.onnx'), intraOpThreads: 1 });
    try {
      expect(r.info).toMatchObject({ layers: 1, kvHeads: 1, headDim: 2, vocabSize: 14 });
      const arena = new StagingArena();
      const ids = arena.int64('input_ids', 3);
      ids.set([1n, 11n, 2n]);
      const pos = arena.int64('position_ids', 3);
      pos.set([0n, 1n, 2n]);
      const mask = arena.float32('attention_mask', 9).fill(0); // all visible
      const empty = arena.float32('past', 0);
      const res = await r.run(
        {
          input_ids: { type: 'int64', dims: [1, 3], data: ids },
          position_ids: { type: 'int64', dims: [1, 3], data: pos },
          attention_mask: { type: 'float32', dims: [1, 1, 3, 3], data: mask },
          logit_index: { type: 'int64', dims: [1, 3], data: BigInt64Array.from([0n, 1n, 2n]) },
          banned_token_ids: { type: 'int64', dims: [0], data: new BigInt64Array(0) },
          'past_key.0': { type: 'float32', dims: [1, 1, 0, 2], data: empty },
          'past_value.0': { type: 'float32', dims: [1, 1, 0, 2], data: empty },
        },
        ['logits', 'present_value.0'],
      );
      const out = res.outputs;
      // the staging buffers went to the worker without a copy (detached here) and came back
      expect(ids.buffer.byteLength).toBe(0);
      expect(Array.from(res.inputs!.input_ids as BigInt64Array)).toEqual([1n, 11n, 2n]);
      expect(Array.from(out['present_value.0'].data as Float32Array)).toEqual([1, 1, 0, 11, 1, 2]);
      // c = 2 visible real tokens -> token 2 with margin 5 at position 0
      expect(out.logits.dims).toEqual([1, 3, 14]);
      expect(out.logits.data[2]).toBe(5);
      expect(Object.keys(out)).toEqual(['logits', 'present_value.0']);
    } finally {
      await r.close();
    }
  });

  it('a failed run rejects with the ORT error and hands the staging buffers back', async () => {
    // logSeverityLevel 4: the failure below is on purpose; the rejection carries onnxruntime's message,
    // so its native logger need not also print it in red on the test run's stderr.
    const r = await OrtRunner.create({ modelPath: path.join(dir, 'model.onnx'), intraOpThreads: 1, logSeverityLevel: 4 });
    try {
      const arena = new StagingArena();
      const ids = arena.int64('input_ids', 2);
      const feeds = {
        input_ids: { type: 'int64' as const, dims: [1, 2], data: ids },
        position_ids: { type: 'int64' as const, dims: [1, 2], data: arena.int64('position_ids', 2) },
        attention_mask: { type: 'float32' as const, dims: [1, 1, 2, 5], data: arena.float32('attention_mask', 10) }, // wrong T
        logit_index: { type: 'int64' as const, dims: [1, 1], data: arena.int64('logit_index', 1) },
        banned_token_ids: { type: 'int64' as const, dims: [0], data: arena.int64('banned_token_ids', 0) },
        'past_key.0': { type: 'float32' as const, dims: [1, 1, 0, 2], data: arena.float32('pk', 0) },
        'past_value.0': { type: 'float32' as const, dims: [1, 1, 0, 2], data: arena.float32('pv', 0) },
      };
      await expect(r.run(feeds, ['logits'])).rejects.toThrow(/^onnxruntime: .*MatMul dimension mismatch/);
      expect(ids.buffer.byteLength).toBe(0); // was transferred
      // a detached staging buffer is replaced, so the next forward still works
      expect(arena.int64('input_ids', 2).length).toBe(2);
    } finally {
      await r.close();
    }
  });

  it('reports a clear error for a missing model file', async () => {
    await expect(OrtRunner.create({ modelPath: path.join(dir, 'nope.onnx') })).rejects.toThrow(/cannot load model/);
  });

  it('the engine on ORT gives the same tokens as on the TypeScript model, batched', async () => {
    const ort = await OrtRunner.create({ modelPath: path.join(dir, 'model.onnx'), intraOpThreads: 1 });
    const manifest: EngineManifest = { name: 'count', version: '1', kind: 'block-diffusion', block_size: 8, tokens: { mask: 11, eos: 12, pad: 13 } };
    const codec = charCodec('abcdefghij.');
    const a = Engine.fromRunner(manifest, ort, codec);
    const b = Engine.fromRunner(manifest, new CountingRunner(spec), codec);
    const reqs = ['abc', 'abcdefghijab', 'abcdefghij.abcdefghij'].map((prompt, i) => ({
      prompt,
      options: { blockSize: 8, subBlockSize: 4, maxNewTokens: 10 + i, subBlockCache: i === 1 },
    }));
    const ra = await Promise.all(reqs.map((q) => a.generate(q)));
    const rb = await Promise.all(reqs.map((q) => b.generate(q)));
    expect(ra.map((r) => r.tokenIds)).toEqual(rb.map((r) => r.tokenIds));
    expect(ra.map((r) => r.stats.forwards)).toEqual(rb.map((r) => r.stats.forwards));
    await a.close();
    await b.close();
  });
});
