import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import {
  BlobTooLargeError,
  createFileStore,
  createLargeStore,
  FsBlobStore,
  getJson,
  LARGE_STORE_FOLDERS,
  putBlobStream,
  putJson,
  S3BlobStore,
  streamBlob,
  TieredBlobStore,
  type BlobStore,
  type S3Settings,
} from './index';

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

  it('leaves no temp file when a stream fails before its file would have opened (CI stop 17)', async () => {
    // A failure on the first chunk used to reject before fs.createWriteStream's asynchronous open,
    // which then created the temp file after putStream had removed it (seen under load: rm and
    // open run on different libuv threads). Busy threads widen the window as a loaded CI box does.
    const s = new FsBlobStore({ dir, maxBytes: 2 });
    let busy = true;
    const jam = (async () => {
      while (busy) await Promise.all(Array.from({ length: 8 }, () => fs.promises.stat(dir)));
    })();
    for (let i = 0; i < 300; i++) {
      await expect(s.putStream(`k${i}`, Readable.from([Buffer.from('abc')]))).rejects.toThrow(/at most 2 bytes/);
      if (i % 30 === 0) {
        const failing = new Readable({
          read() {
            this.destroy(new Error('source broke'));
          },
        });
        await expect(s.putStream(`f${i}`, failing)).rejects.toThrow(/source broke/);
      }
    }
    busy = false;
    await jam;
    await new Promise((r) => setTimeout(r, 50)); // any late open would have landed by now
    expect(fs.readdirSync(dir)).toEqual([]);
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

  it('with maxAgeSeconds, sweeps values older than that even without an expiry, and dead temp files', async () => {
    const s = new FsBlobStore({ dir, maxAgeSeconds: 60 });
    await s.put('aa/old', 'x'); // no TTL: only the age bound removes it
    await s.put('aa/new', 'y');
    await s.put('aa/ttl', 'z', { ttlSeconds: 3600 });
    const tmp = `${s.pathOf('aa/dead')}.abc123.tmp`;
    fs.writeFileSync(tmp, 'half');
    const past = new Date(Date.now() - 120_000);
    for (const f of [s.pathOf('aa/old'), s.pathOf('aa/ttl'), tmp]) fs.utimesSync(f, past, past);
    expect(await s.sweep()).toBe(2); // old and ttl (older than the bound); the temp file is not a value
    expect(await s.get('aa/old')).toBeNull();
    expect(await s.get('aa/ttl')).toBeNull();
    expect(fs.existsSync(s.pathOf('aa/ttl') + '.expires')).toBe(false);
    expect(fs.existsSync(tmp)).toBe(false);
    expect((await s.get('aa/new'))!.toString()).toBe('y');
    expect(await new FsBlobStore({ dir }).sweep(Date.now() + 3600_000)).toBe(0); // no bound: no-TTL values stay
    expect((await s.get('aa/new'))!.toString()).toBe('y');
  });

  it('streams a value in and out in chunks, never whole', async () => {
    const s = new FsBlobStore({ dir });
    const chunk = Buffer.alloc(64 * 1024, 97);
    const n = 40; // 2.5 MiB
    async function* gen() {
      for (let i = 0; i < n; i++) yield chunk;
    }
    expect(await s.putStream('big/f', Readable.from(gen()), { ttlSeconds: 60 })).toBe(n * chunk.length);
    let bytes = 0;
    let biggest = 0;
    for await (const c of (await s.getStream('big/f'))!) {
      bytes += (c as Buffer).length;
      biggest = Math.max(biggest, (c as Buffer).length);
    }
    expect(bytes).toBe(n * chunk.length);
    expect(biggest).toBeLessThanOrEqual(64 * 1024);
    // a failing source leaves nothing behind, not even the temp file
    async function* broken() {
      yield chunk;
      throw new Error('client went away');
    }
    await expect(s.putStream('big/g', Readable.from(broken()))).rejects.toThrow(/went away/);
    expect(await s.exists('big/g')).toBe(false);
    expect(fs.readdirSync(path.join(dir, 'big')).sort()).toEqual(['f', 'f.expires']);
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

describe('stream helpers and the file store', () => {
  /** A store with only the required methods (no getStream/putStream), bounded at 8 bytes. */
  function plainStore(): BlobStore & { data: Map<string, Buffer> } {
    const data = new Map<string, Buffer>();
    return {
      kind: 'plain',
      maxBytes: 8,
      data,
      put: async (k, v) => void data.set(k, Buffer.from(v)),
      get: async (k) => data.get(k) ?? null,
      exists: async (k) => data.has(k),
      delete: async (k) => data.delete(k),
    };
  }

  it('fall back to buffered get/put for stores without streaming, within maxBytes', async () => {
    const p = plainStore();
    expect(await putBlobStream(p, 'k', Readable.from([Buffer.from('ab'), 'cd']))).toBe(4);
    expect(p.data.get('k')!.toString()).toBe('abcd');
    expect(await text(await streamBlob(p, 'k'))).toBe('abcd');
    expect(await streamBlob(p, 'nope')).toBeNull();
    await expect(putBlobStream(p, 'big', Readable.from([Buffer.alloc(5), Buffer.alloc(5)]))).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(p.data.has('big')).toBe(false);
  });

  it("use the store's own streaming when it has it", async () => {
    const s = new FsBlobStore({ dir });
    expect(await putBlobStream(s, 'x/y', Readable.from(['12', '34']))).toBe(4);
    expect(await text(await streamBlob(s, 'x/y'))).toBe('1234');
  });

  it('createFileStore keeps files under <dir>/files with the retention as TTL and age bound', async () => {
    const f = createFileStore({ dir, retentionSeconds: 60 });
    await f.put('ab/file-00ab', 'line\n');
    expect(fs.readFileSync(path.join(dir, 'files', 'ab', 'file-00ab'), 'utf8')).toBe('line\n');
    const expires = Number(fs.readFileSync(path.join(dir, 'files', 'ab', 'file-00ab.expires'), 'utf8'));
    expect(Math.abs(expires - (Date.now() + 60_000))).toBeLessThan(5000);
    // a file written before files had expiry sidecars is still swept by age
    fs.writeFileSync(path.join(dir, 'files', 'ab', 'file-legacy'), 'old');
    const past = new Date(Date.now() - 61_000);
    fs.utimesSync(path.join(dir, 'files', 'ab', 'file-legacy'), past, past);
    expect(await f.sweep!()).toBe(1);
    expect(await f.exists('ab/file-legacy')).toBe(false);
    expect(await f.exists('ab/file-00ab')).toBe(true);
  });
});

describe('createLargeStore (one switch for every large-object use)', () => {
  const s3: S3Settings = {
    endpoint: 'http://s3.test:9000',
    region: 'us-east-1',
    bucket: 'dllm',
    prefix: 'farm/',
    accessKeyId: 'AKID',
    secretAccessKey: 'very-secret-key',
    forcePathStyle: true,
  };

  /**
   * The URLs the store's requests go to, as the AWS SDK built them (endpoint, bucket addressing,
   * key): read at the SDK's last build step, before anything is sent (s3.test does not resolve).
   */
  async function urlsOf(store: BlobStore, act: (s: BlobStore) => Promise<unknown>): Promise<string[]> {
    const urls: string[] = [];
    const stop = new Error('request built');
    (store as S3BlobStore).client.middlewareStack.add(
      () => async (args) => {
        const r = args.request as { protocol: string; hostname: string; port?: number; path: string };
        urls.push(`${r.protocol}//${r.hostname}${r.port ? `:${r.port}` : ''}${r.path}`);
        throw stop;
      },
      { step: 'build', priority: 'low' },
    );
    await expect(act(store)).rejects.toMatchObject({ cause: stop });
    return urls;
  }

  it('keeps the existing on-disk layout with the fs backend (default): results in blobs/, files in files/', async () => {
    expect(LARGE_STORE_FOLDERS).toEqual({ results: 'blobs', files: 'files' });
    const r = createLargeStore({ dir }, 'results', { defaultTtlSeconds: 0 });
    const f = createLargeStore({ backend: 'fs', dir, s3 }, 'files', { defaultTtlSeconds: 0 });
    expect([r.kind, f.kind]).toEqual(['fs', 'fs']);
    await r.put('rollouts/r1/trajectories.jsonl', 'a');
    await f.put('ab/file-1', 'b');
    expect(fs.readFileSync(path.join(dir, 'blobs', 'rollouts', 'r1', 'trajectories.jsonl'), 'utf8')).toBe('a');
    expect(fs.readFileSync(path.join(dir, 'files', 'ab', 'file-1'), 'utf8')).toBe('b');
  });

  it('puts every use under <S3_PREFIX><folder>/ in the bucket with the s3 backend', async () => {
    const r = createLargeStore({ backend: 's3', dir, s3 }, 'results', { defaultTtlSeconds: 60 });
    const f = createFileStore({ backend: 's3', dir, s3, retentionSeconds: 600 });
    expect(r).toBeInstanceOf(S3BlobStore);
    expect(f).toBeInstanceOf(S3BlobStore);
    expect(await urlsOf(r, (s) => s.put('distill/d1/meta.json', '{}'))).toEqual(['http://s3.test:9000/dllm/farm/blobs/distill/d1/meta.json']);
    expect(await urlsOf(f, (s) => s.put('ab/file-1', 'x'))).toEqual(['http://s3.test:9000/dllm/farm/files/ab/file-1']);
    const root = createLargeStore({ backend: 's3', dir, s3: { ...s3, prefix: '', forcePathStyle: false } }, 'files', { defaultTtlSeconds: 0 });
    expect(await urlsOf(root, (s) => s.put('k', 'x'))).toEqual(['http://dllm.s3.test:9000/files/k']);
    expect(fs.existsSync(path.join(dir, 'blobs'))).toBe(false); // nothing on the volume
  });

  it('hands the retry and timeout settings to the SDK client; no keys = the default credential chain', async () => {
    const r = createLargeStore({ backend: 's3', dir, s3: { ...s3, maxAttempts: 7 } }, 'results', { defaultTtlSeconds: 0 }) as S3BlobStore;
    expect(await r.client.config.maxAttempts()).toBe(7);
    expect(((await r.client.config.retryStrategy()) as { mode?: string }).mode).toBe('standard');
    const { accessKeyId: _a, secretAccessKey: _s, ...keyless } = s3;
    const chain = createLargeStore({ backend: 's3', dir, s3: keyless }, 'results', { defaultTtlSeconds: 0 }) as S3BlobStore;
    expect(await chain.client.config.maxAttempts()).toBe(3);
    expect(chain.client.config.credentials).toBeInstanceOf(Function); // the SDK's provider chain, resolved on first use
    expect(() => createLargeStore({ backend: 's3', dir, s3: { ...s3, secretAccessKey: undefined } }, 'files', { defaultTtlSeconds: 0 })).toThrow(/or neither/);
  });

  it('never shows the secret key when a store is inspected or serialized', () => {
    const r = createLargeStore({ backend: 's3', dir, s3 }, 'results', { defaultTtlSeconds: 60 });
    expect(inspect(r, { depth: 5, showHidden: true })).not.toContain('very-secret-key');
    expect(JSON.stringify(r)).not.toContain('very-secret-key');
  });

  it('refuses an s3 backend without S3 settings, naming the variables', () => {
    expect(() => createLargeStore({ backend: 's3', dir }, 'files', { defaultTtlSeconds: 0 })).toThrow(/S3_ENDPOINT, S3_REGION, S3_BUCKET/);
  });
});
