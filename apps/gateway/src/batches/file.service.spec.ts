import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FsBlobStore } from '@dllm/storage';
import { FileWriter } from './file.service';

let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-filewriter-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('FileWriter (batch outputs streamed into the file store)', () => {
  it('streams many lines with backpressure and reports the bytes stored', async () => {
    const store = new FsBlobStore({ dir });
    const w = new FileWriter(store, 'ab/file-ab');
    const line = `${JSON.stringify({ custom_id: 'x', text: 'y'.repeat(200) })}\n`;
    for (let i = 0; i < 5000; i++) await w.write(line); // ~1 MB, far above the stream's buffer
    expect(await w.end()).toBe(5000 * line.length);
    expect(w.bytes).toBe(5000 * line.length);
    expect(fs.statSync(store.pathOf('ab/file-ab')).size).toBe(5000 * line.length);
  });

  it('abort() leaves nothing behind', async () => {
    const store = new FsBlobStore({ dir });
    const w = new FileWriter(store, 'ab/file-ab');
    await w.write('partial\n');
    await w.abort();
    expect(await store.exists('ab/file-ab')).toBe(false);
    expect(fs.readdirSync(path.join(dir, 'ab'))).toEqual([]);
  });

  it('a store that refuses the bytes fails the writes instead of hanging them', async () => {
    const store = new FsBlobStore({ dir, maxBytes: 1000 });
    const w = new FileWriter(store, 'ab/file-ab');
    const write = async () => {
      for (let i = 0; i < 10_000; i++) await w.write('x'.repeat(100));
    };
    await expect(write()).rejects.toThrow(/at most 1000 bytes/);
    await expect(w.end()).rejects.toThrow(/at most 1000 bytes/);
    expect(await store.exists('ab/file-ab')).toBe(false);
  });
});
