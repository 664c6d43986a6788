// S3BlobStore against a real S3-compatible server (s3rver: an S3 API over a local directory, with
// access-key checking; it does not verify V4 signatures, see s3-store.spec.ts), in-process on a
// free port (test/helpers/s3rver.ts). No Redis, no network beyond localhost.
import { Readable } from 'node:stream';
import { startS3rver, type TestS3 } from '../../../test/helpers/s3rver';
import { BlobTooLargeError, S3BlobStore, S3Error, streamBlob, type S3BlobStoreOptions } from './index';

let server: TestS3;
let opts: S3BlobStoreOptions;

beforeAll(async () => {
  server = await startS3rver(['dllm']);
  opts = { endpoint: server.endpoint, bucket: 'dllm', region: server.region, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, prefix: `t${process.pid}/` };
});

afterAll(async () => {
  await server?.close();
});

async function text(s: Readable | null): Promise<string | null> {
  if (!s) return null;
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

describe('S3BlobStore (s3rver)', () => {
  it('puts, gets, streams, checks and deletes under nested keys', async () => {
    const s = new S3BlobStore(opts);
    await s.put('batch:b1/out.jsonl', 'line1\n');
    expect((await s.get('batch:b1/out.jsonl'))!.toString()).toBe('line1\n');
    expect(await text(await s.getStream('batch:b1/out.jsonl'))).toBe('line1\n');
    expect(await text(await streamBlob(s, 'batch:b1/out.jsonl'))).toBe('line1\n');
    expect(await s.exists('batch:b1/out.jsonl')).toBe(true);
    expect(await s.delete('batch:b1/out.jsonl')).toBe(true);
    expect(await s.get('batch:b1/out.jsonl')).toBeNull();
    expect(await s.getStream('batch:b1/out.jsonl')).toBeNull();
    expect(await s.exists('batch:b1/out.jsonl')).toBe(false);
    expect(await s.delete('nope')).toBe(false);
    await expect(s.put('../x', 'a')).rejects.toThrow(/invalid blob key/);
  });

  it('surfaces the server\'s error code (unknown access key)', async () => {
    // s3rver checks the access key but not V4 signatures; s3-store.spec.ts checks the signer against AWS's vectors.
    const s = new S3BlobStore({ ...opts, accessKeyId: 'NOBODY' });
    const e = await s.put('k', 'v').catch((x) => x);
    expect(e).toBeInstanceOf(S3Error);
    expect(e.message).toMatch(/InvalidAccessKeyId/);
  });

  it('streams a large value up as a multipart upload and down in chunks', async () => {
    const s = new S3BlobStore({ ...opts, partBytes: 5 << 20 });
    const chunk = Buffer.alloc(256 * 1024, 98);
    const n = 44; // 11 MiB: three parts (5 + 5 + 1)
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
    expect(biggest).toBeLessThan(n * chunk.length);
    // a small stream is one PUT
    expect(await s.putStream('small', Readable.from(['ab', 'cd']))).toBe(4);
    expect((await s.get('small'))!.toString()).toBe('abcd');
  });

  it('a failing or oversized stream leaves no object behind', async () => {
    const s = new S3BlobStore({ ...opts, partBytes: 5 << 20, maxBytes: 6 << 20 });
    const chunk = Buffer.alloc(1 << 20, 99);
    async function* tooBig() {
      for (let i = 0; i < 8; i++) yield chunk;
    }
    await expect(s.putStream('over', Readable.from(tooBig()))).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(await s.exists('over')).toBe(false);
    async function* broken() {
      yield chunk;
      throw new Error('client went away');
    }
    await expect(s.putStream('broken', Readable.from(broken()))).rejects.toThrow(/went away/);
    expect(await s.exists('broken')).toBe(false);
  });

  it('expires values by TTL metadata; sweep() removes expired and (with maxAgeSeconds) old ones', async () => {
    const s = new S3BlobStore({ ...opts, prefix: `${opts.prefix}ttl/` });
    await s.put('a', 'x', { ttlSeconds: 1 });
    await s.put('b', 'y');
    await s.put('c', 'z', { ttlSeconds: 3600 });
    expect((await s.get('a'))!.toString()).toBe('x');
    expect(await s.sweep(Date.now() + 2000)).toBe(1); // as if two seconds passed: 'a' only
    expect(await s.exists('a')).toBe(false);
    expect(await s.exists('b')).toBe(true);
    const aged = new S3BlobStore({ ...opts, prefix: `${opts.prefix}ttl/`, maxAgeSeconds: 60 });
    expect(await aged.sweep(Date.now() + 120_000)).toBe(2); // b (no TTL) and c, both past the age bound
    expect(await s.exists('b')).toBe(false);
    expect(await s.exists('c')).toBe(false);
  });
});
