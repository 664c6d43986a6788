/** @jest-environment ./libs/model/src/testing/ort-environment.js */
// The engine in its own worker thread (Engine.create's default): the scheduler loop and the ORT
// session run together there, so decoding goes on while this thread is busy, and only admissions,
// cancels, block events, results and stats cross. Compared with the loop in this thread ('inline').
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildTinyModel } from '@dllm/model';
import { Engine } from './engine';

let tmp: string;
let dirA: string;
let dirB: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-engine-thread-'));
  dirA = path.join(tmp, 'a');
  dirB = path.join(tmp, 'b');
  const cfg = { vocab_size: 64, num_layers: 2, hidden_size: 32, head_dim: 8 };
  buildTinyModel(dirA, { seed: 3, config: cfg, manifest: { name: 'thread-test', version: 'a', kind: 'autoregressive', block_size: 8 } });
  buildTinyModel(dirB, { seed: 4, config: cfg, manifest: { name: 'thread-test', version: 'b', kind: 'autoregressive', block_size: 8 } });
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Blocks this thread (no event loop turns) for `ms`. */
function busy(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    /* spin */
  }
}

const req = { promptIds: [5, 6, 7, 8], options: { maxNewTokens: 40, stopTokenIds: [], seed: 1 } };

describe('Engine in its own thread', () => {
  it('decodes while the calling thread is blocked; the inline loop cannot (control)', async () => {
    const BLOCK_MS = 1500;
    const e = await Engine.create({ modelDir: dirA, intraOpThreads: 1 });
    const inline = await Engine.create({ modelDir: dirA, intraOpThreads: 1, thread: 'inline' });
    try {
      await e.generate(req); // warm-up
      await inline.generate(req);
      const p = e.generate(req);
      busy(BLOCK_MS);
      const r = await p;
      // the sequence started and finished in the engine thread while this one spun
      expect(r.stats.wallMs).toBeLessThan(BLOCK_MS);
      const q = inline.generate(req);
      busy(BLOCK_MS);
      const s = await q;
      expect(s.stats.wallMs).toBeGreaterThanOrEqual(BLOCK_MS);
      // same model, same greedy tokens either way
      expect(s.tokenIds).toEqual(r.tokenIds);
      // no hop: the time around session.run is the time inside it
      const st = e.stats();
      expect(st.runner.calls).toBeGreaterThan(0);
      expect(st.runner.roundTripMs).toBe(st.runner.runMs);
      expect(st.forwards).toBe(st.runner.calls);
    } finally {
      await e.close();
      await inline.close();
    }
  }, 30_000);

  it('streams block events, cancels, rejects bad requests with a RangeError, swaps models and closes', async () => {
    const e = await Engine.create({ modelDir: dirA, intraOpThreads: 1 });
    try {
      expect(e.model).toMatchObject({ name: 'thread-test', version: 'a', kind: 'autoregressive' });
      expect(e.codec.decode(e.codec.encode('123'))).toBe('123');
      const texts: string[] = [];
      const r = await e.generate({ promptIds: [5, 6, 7], options: { maxNewTokens: 20, stopTokenIds: [] } }, { onBlock: (ev) => texts.push(ev.text) });
      expect(texts.join('')).toBe(r.text);
      expect(texts.length).toBeGreaterThan(0);

      await expect(e.generate({ promptIds: [5], options: { maxNewTokens: 0 } })).rejects.toBeInstanceOf(RangeError);
      await expect(e.generate({ promptIds: [5], options: { maxNewTokens: 0 } })).rejects.toThrow(/maxNewTokens/);

      const ctrl = new AbortController();
      const c = e.generate({ promptIds: [5, 6], options: { maxNewTokens: 200, stopTokenIds: [] } }, { signal: ctrl.signal });
      ctrl.abort();
      const cr = await c;
      expect(cr.finishReason).toBe('cancelled');
      expect(cr.tokenIds.length).toBeLessThan(200);
      const pre = new AbortController();
      pre.abort();
      expect((await e.generate({ promptIds: [5], options: { maxNewTokens: 5 } }, { signal: pre.signal })).finishReason).toBe('cancelled');

      await e.swapModel(dirB);
      expect(e.model.version).toBe('b');
      await expect(e.swapModel(dirB)).rejects.toThrow(/same name and version/);
      const after = await e.generate({ promptIds: [5, 6, 7], options: { maxNewTokens: 20, stopTokenIds: [] } });
      expect(after.model).toEqual({ name: 'thread-test', version: 'b' });
      expect(e.stats().forwards).toBeGreaterThan(0);
    } finally {
      await e.close();
    }
    await expect(e.generate(req)).rejects.toThrow(/closed/);
  }, 60_000); // starts an engine thread and a second model: seconds on a loaded 2-core machine

  it('a model directory that does not load rejects create with the loader message', async () => {
    await expect(Engine.create({ modelDir: path.join(tmp, 'absent') })).rejects.toThrow(/does not exist/);
  });
});
