import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { BlobTooLargeError, FsBlobStore, getJson, putJson, TieredBlobStore } from './index';

let dir: string;
beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-store-'))));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

async function text(s: Readable | null): Promise<string | null> {
  if (!s) return null;
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

describe('FsBlobStore', () => {
  it('puts, gets, streams and deletes under nested keys', async () => {
    const s = new FsBlobStore({ dir });
    await s.put('batch:b1/output.jsonl', 'line1\n');
    expect(fs.existsSync(path.join(dir, 'batch', 'b1', 'output.jsonl'))).toBe(true);
    expect((await s.get('batch:b1/output.jsonl'))!.toString()).toBe('line1\n');
    expect(await text(await s.getStream('batch:b1/output.jsonl'))).toBe('line1\n');
    expect(await s.exists('batch:b1/output.jsonl')).toBe(true);
    expect(await s.delete('batch:b1/output.jsonl')).toBe(true);
    expect(await s.get('batch:b1/output.jsonl')).toBeNull();
    expect(await s.getStream('nope')).toBeNull();
    expect(await s.delete('nope')).toBe(false);
  });

  it('refuses keys that escape the directory and values over the bound', async () => {
    const s = new FsBlobStore({ dir, maxBytes: 4 });
    await expect(s.put('../x', 'a')).rejects.toThrow(/invalid blob key/);
    await expect(s.put('/etc/passwd', 'a')).rejects.toThrow(/invalid blob key/);
    await expect(s.put('a b', 'a')).rejects.toThrow(/invalid blob key/);
    await expect(s.put('k', 'hello')).rejects.toBeInstanceOf(BlobTooLargeError);
    await expect(s.putStream('k', Readable.from([Buffer.from('abc'), Buffer.from('def')]))).rejects.toThrow(/at most 4 bytes/);
    expect(await s.exists('k')).toBe(false);
    expect(fs.readdirSync(dir)).toEqual([]); // no temp file left behind
  });

  it('expires values by TTL and sweeps them', async () => {
    const s = new FsBlobStore({ dir });
    await s.put('a', 'x', { ttlSeconds: 1 });
    await s.put('b', 'y');
    expect((await s.get('a'))!.toString()).toBe('x');
    fs.writeFileSync(s.pathOf('a') + '.expires', String(Date.now() - 1)); // as if a second passed
    expect(await s.sweep()).toBe(1);
    expect(await s.get('a')).toBeNull();
    expect((await s.get('b'))!.toString()).toBe('y');
  });

  it('stores streams and JSON', async () => {
    const s = new FsBlobStore({ dir });
    expect(await s.putStream('f', Readable.from([Buffer.from('ab'), Buffer.from('cd')]))).toBe(4);
    expect((await s.get('f'))!.toString()).toBe('abcd');
    await putJson(s, 'j', { a: [1, 2] });
    expect(await getJson(s, 'j')).toEqual({ a: [1, 2] });
  });
});

describe('TieredBlobStore', () => {
  it('keeps small values in the small store and large ones behind a pointer', async () => {
    const small = new FsBlobStore({ dir: path.join(dir, 's'), maxBytes: 20 });
    const large = new FsBlobStore({ dir: path.join(dir, 'l') });
    const t = new TieredBlobStore(small, large);
    await t.put('k1', 'tiny');
    await t.put('k2', 'a value much larger than twenty bytes');
    expect((await small.get('k1'))!.toString()).toBe('tiny');
    expect(await large.exists('k1')).toBe(false);
    expect((await small.get('k2'))!.length).toBeGreaterThan(0);
    expect((await large.get('k2'))!.toString()).toBe('a value much larger than twenty bytes');
    expect((await t.get('k2'))!.toString()).toBe('a value much larger than twenty bytes');
    expect(await text(await t.getStream('k2'))).toBe('a value much larger than twenty bytes');
    expect(await text(await t.getStream('k1'))).toBe('tiny');
    // overwrite large with small: the large copy goes away
    await t.put('k2', 'now tiny');
    expect(await large.exists('k2')).toBe(false);
    expect((await t.get('k2'))!.toString()).toBe('now tiny');
    await t.put('k3', 'another value longer than twenty bytes', { ttlSeconds: 1 });
    fs.writeFileSync(large.pathOf('k3') + '.expires', String(Date.now() - 1));
    expect(await t.sweep()).toBe(1);
    expect(await large.exists('k3')).toBe(false);
    expect(await t.delete('k2')).toBe(true);
    expect(await t.get('k2')).toBeNull();
  });
});
