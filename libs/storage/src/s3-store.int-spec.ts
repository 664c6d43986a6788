// S3BlobStore against a real S3-compatible server (s3rver: an S3 API over a local directory, with
// access-key checking; signing is the AWS SDK's), in-process on a free port (test/helpers/s3rver.ts).
// Faults are injected by a small HTTP proxy in front of it: 503 SlowDown answers (the SDK must retry
// them) and requests that never get an answer (the call must fail within the configured timeout).
// No Redis, no network beyond localhost.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { startS3rver, type TestS3 } from '../../../test/helpers/s3rver';
import { BlobTooLargeError, S3BlobStore, S3Error, streamBlob, type S3BlobStoreOptions } from './index';

let server: TestS3;
let opts: S3BlobStoreOptions;

beforeAll(async () => {
  server = await startS3rver(['dllm']);
  opts = {
    endpoint: server.endpoint,
    bucket: 'dllm',
    region: server.region,
    accessKeyId: server.accessKeyId,
    secretAccessKey: server.secretAccessKey,
    prefix: `t${process.pid}/`,
  };
});

afterAll(async () => {
  await server?.close();
});

/** What the fault proxy does with the n-th request (1-based) it sees. */
type Fault = 'forward' | 'slowdown' | 'hang' | 'stall-body';

interface FaultProxy {
  endpoint: string;
  /** Every request seen, in order: method, path and query. */
  seen: string[];
  close(): Promise<void>;
}

/**
 * A plain HTTP proxy in front of s3rver that answers some requests itself: 'slowdown' = 503 with
 * S3's SlowDown error body (what S3 sends when throttling), 'hang' = reads the request and never
 * answers, 'stall-body' = forwards the answer's headers and first chunk, then sends nothing more.
 */
async function startFaultProxy(upstream: string, plan: (n: number, req: http.IncomingMessage) => Fault): Promise<FaultProxy> {
  const seen: string[] = [];
  const target = new URL(upstream);
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const fault = plan(seen.length, req);
    if (fault === 'slowdown') {
      req.resume();
      req.on('end', () => {
        res.writeHead(503, { 'content-type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
      });
      return;
    }
    if (fault === 'hang') {
      req.resume();
      return;
    }
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      if (fault === 'stall-body') ur.once('data', (c: Buffer) => res.write(c.subarray(0, 1024)));
      else ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

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

  it("surfaces the server's error code (unknown access key)", async () => {
    const s = new S3BlobStore({ ...opts, accessKeyId: 'NOBODY' });
    const e = await s.put('k', 'v').catch((x) => x);
    expect(e).toBeInstanceOf(S3Error);
    expect(e.message).toMatch(/InvalidAccessKeyId/);
    expect(e.status).toBe(403);
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

  describe('faults between the store and the server', () => {
    let proxy: FaultProxy | undefined;
    afterEach(async () => {
      await proxy?.close();
      proxy = undefined;
    });
    const via = async (plan: (n: number, req: http.IncomingMessage) => Fault, o: Partial<S3BlobStoreOptions> = {}) => {
      proxy = await startFaultProxy(server.endpoint, plan);
      return new S3BlobStore({ ...opts, endpoint: proxy.endpoint, prefix: `${opts.prefix}faults/`, ...o });
    };

    it('retries 503 SlowDown answers (standard retry mode) and succeeds within maxAttempts', async () => {
      const s = await via((n) => (n <= 2 ? 'slowdown' : 'forward'), { maxAttempts: 3 });
      await s.put('slow', 'after two 503s');
      expect(proxy!.seen.filter((r) => r.startsWith('PUT '))).toHaveLength(3);
      expect((await s.get('slow'))!.toString()).toBe('after two 503s');
      await s.close();
    });

    it("gives up after maxAttempts with the server's code and the attempt count", async () => {
      const s = await via(() => 'slowdown', { maxAttempts: 2 });
      const e = await s.get('any').catch((x) => x);
      expect(e).toBeInstanceOf(S3Error);
      expect(e).toMatchObject({ status: 503, code: 'SlowDown', attempts: 2 });
      expect(e.message).toMatch(/GET any: 503 SlowDown.*after 2 attempts/);
      expect(proxy!.seen).toHaveLength(2);
      await s.close();
    });

    it('retries a throttled part of a multipart upload; the object is whole', async () => {
      let throttled = 0;
      const s = await via((_n, req) => (/partNumber=2/.test(req.url ?? '') && throttled++ === 0 ? 'slowdown' : 'forward'), { partBytes: 5 << 20 });
      const chunk = Buffer.alloc(1 << 20, 7);
      async function* gen() {
        for (let i = 0; i < 11; i++) yield chunk;
      }
      expect(await s.putStream('parts', Readable.from(gen()))).toBe(11 << 20);
      expect(throttled).toBe(2); // the 503 and its retry
      expect(proxy!.seen.filter((r) => /partNumber=2/.test(r))).toHaveLength(2);
      const got = (await s.get('parts'))!;
      expect(got.length).toBe(11 << 20);
      expect(got.every((b) => b === 7)).toBe(true);
      await s.close();
    });

    it('fails a request that never gets an answer within requestTimeoutMs per attempt', async () => {
      const s = await via(() => 'hang', { requestTimeoutMs: 300, maxAttempts: 2 });
      const t0 = Date.now();
      const e = await s.put('hung', 'x').catch((x) => x);
      const ms = Date.now() - t0;
      expect(e).toBeInstanceOf(S3Error);
      expect(e).toMatchObject({ status: 0, code: 'TimeoutError', attempts: 2 });
      expect(ms).toBeGreaterThanOrEqual(2 * 300);
      expect(ms).toBeLessThan(2 * 300 + 2000); // two attempts plus the retry's back-off, not a hang
      expect(proxy!.seen).toHaveLength(2);
      await s.close();
    });

    it('errors a download whose body stops arriving, after requestTimeoutMs of silence', async () => {
      await new S3BlobStore(opts).put('faults/stalled', Buffer.alloc(256 * 1024, 1));
      const s = await via((_n, req) => (req.method === 'GET' ? 'stall-body' : 'forward'), { requestTimeoutMs: 300 });
      const t0 = Date.now();
      const stream = (await s.getStream('stalled'))!;
      const e = await (async () => {
        for await (const _c of stream);
      })().catch((x) => x);
      expect(e).toBeInstanceOf(Error);
      expect(String(e.message)).toMatch(/timed out|aborted/);
      expect(Date.now() - t0).toBeLessThan(300 + 2000);
      await s.close();
    });
  });

  it('uses the default credential chain (here: AWS_* env) when no static keys are set', async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    const { accessKeyId: _a, secretAccessKey: _s, ...keyless } = opts;
    try {
      process.env.AWS_ACCESS_KEY_ID = server.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = server.secretAccessKey;
      const s = new S3BlobStore(keyless);
      await s.put('chain', 'from env');
      expect((await s.get('chain'))!.toString()).toBe('from env');
      process.env.AWS_ACCESS_KEY_ID = 'NOBODY';
      const e = await new S3BlobStore(keyless).put('chain', 'x').catch((x) => x);
      expect(e).toMatchObject({ status: 403, code: 'InvalidAccessKeyId' }); // the chain read the env, not a cached key
    } finally {
      for (const [k, v] of [
        ['AWS_ACCESS_KEY_ID', saved.id],
        ['AWS_SECRET_ACCESS_KEY', saved.secret],
      ] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    expect(() => new S3BlobStore({ ...keyless, accessKeyId: 'only-one' })).toThrow(/both accessKeyId and secretAccessKey, or neither/);
  });
});
