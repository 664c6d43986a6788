/** @jest-environment ./libs/model/src/testing/ort-environment.js */
// The engine serves a quantized model directory like any other, under its own version (pool key).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildTinyModel } from '@dllm/model';
import { Engine } from '@dllm/engine';
import { quantizeModelDir } from './model-dir';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-quant-engine-'));
  buildTinyModel(path.join(tmp, 'fp32'), { seed: 5, config: { vocab_size: 100, hidden_size: 64, intermediate_size: 128 }, manifest: { block_size: 8 } });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test.each(['int8', 'int4'] as const)('%s model: engine generates with both policies and reports the quantized version', async (scheme) => {
  const dir = path.join(tmp, scheme);
  const q = await quantizeModelDir(path.join(tmp, 'fp32'), dir, { scheme });
  const engine = await Engine.create({ modelDir: dir, intraOpThreads: 1 });
  try {
    expect(engine.model.version).toBe(q.version);
    expect(engine.model.version).toMatch(new RegExp(`\\+${scheme}`));
    for (const policy of ['ar', 'fast-dllm-v2'] as const) {
      const r = await engine.generate({ prompt: 'Q: 1+2=?\nA:', options: { policy, maxNewTokens: 8, temperature: 0 } });
      expect(r.model.version).toBe(q.version);
      expect(r.usage.completionTokens).toBeGreaterThan(0);
      expect(r.stats.forwards).toBeGreaterThan(0);
    }
  } finally {
    await engine.close();
  }
});
