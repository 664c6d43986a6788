// Values in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, R2...), path-style requests
// (virtual-hosted with forcePathStyle: false) signed with AWS Signature V4 by hand (node:crypto +
// fetch, no SDK). Streams go up as a multipart upload, one part in memory at a time; downloads
// stream. S3 has no per-object TTL, so the expiry is object metadata (x-amz-meta-dllm-expires)
// enforced on read and by sweep(); in production add a bucket lifecycle rule for the prefix as well
// (sweep() lists and HEADs every object).
import { createHash, createHmac } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { BlobTooLargeError, checkKey, toBuffer, type BlobStore, type PutOptions } from './blob-store';

export interface S3BlobStoreOptions {
  /** e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:9000. */
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** Prepended to every key inside the bucket (e.g. 'dllm/files/'). */
  prefix?: string;
  maxBytes?: number;
  /** 0 = keep until deleted. */
  defaultTtlSeconds?: number;
  /** Like FsBlobStore's: sweep() removes objects last written longer ago than this. 0 = off. */
  maxAgeSeconds?: number;
  /**
   * true (default): requests go to <endpoint>/<bucket>/<key> (MinIO, Ceph, s3rver, any endpoint
   * that is an IP); false: to <bucket>.<endpoint host>/<key> (virtual-hosted, AWS's preferred form).
   */
  forcePathStyle?: boolean;
  /** Multipart part size for putStream (S3's minimum is 5 MiB for every part but the last). */
  partBytes?: number;
}

const EXPIRES = 'x-amz-meta-dllm-expires';
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const hmac = (k: Buffer | string, s: string) => createHmac('sha256', k).update(s, 'utf8').digest();
/** RFC 3986 encoding as SigV4 wants it. */
const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const xmlText = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');

/** SigV4 canonical query string: names and values RFC 3986-encoded, sorted by name. */
export function canonicalQuery(q: Record<string, string>): string {
  return Object.entries(q)
    .map(([k, v]) => [enc(k), enc(v)])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/**
 * The Authorization header of an S3 request (AWS Signature V4, header form). `path` is the
 * canonical (already encoded) path, `query` the canonical query; every header given is signed.
 */
export function signV4(p: {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  payloadHash: string;
  amzDate: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}): string {
  const day = p.amzDate.slice(0, 8);
  const lower = Object.fromEntries(Object.entries(p.headers).map(([k, v]) => [k.toLowerCase(), String(v).trim().replace(/\s+/g, ' ')]));
  const names = Object.keys(lower).sort();
  const signed = names.join(';');
  const canonical = [p.method, p.path, p.query, names.map((n) => `${n}:${lower[n]}\n`).join(''), signed, p.payloadHash].join('\n');
  const scope = `${day}/${p.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', p.amzDate, scope, sha256(canonical)].join('\n');
  const kSigning = hmac(hmac(hmac(hmac(`AWS4${p.secretAccessKey}`, day), p.region), 's3'), 'aws4_request');
  const signature = createHmac('sha256', kSigning).update(toSign, 'utf8').digest('hex');
  return `AWS4-HMAC-SHA256 Credential=${p.accessKeyId}/${scope}, SignedHeaders=${signed}, Signature=${signature}`;
}

export class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'S3Error';
  }
}

interface Req {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE' | 'HEAD';
  key?: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Buffer;
}

export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  readonly maxBytes: number;
  private readonly base: URL;
  private readonly partBytes: number;
  private readonly o: Omit<S3BlobStoreOptions, 'secretAccessKey'>;
  /** Kept out of `o` so that logging or inspecting the store never shows it. */
  readonly #secret: string;

  constructor(o: S3BlobStoreOptions) {
    const { secretAccessKey, ...rest } = o;
    this.o = rest;
    this.#secret = secretAccessKey;
    this.base = new URL(o.endpoint);
    this.maxBytes = o.maxBytes ?? Number.MAX_SAFE_INTEGER;
    this.partBytes = Math.max(1, o.partBytes ?? 8 << 20);
  }

  private objectKey(key: string): string {
    return `${this.o.prefix ?? ''}${checkKey(key)}`;
  }

  /** Signs and sends one request (SigV4, path-style). */
  private async send(r: Req): Promise<Response> {
    const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
    const basePath = this.base.pathname.replace(/\/$/, '');
    const pathStyle = this.o.forcePathStyle ?? true;
    const host = pathStyle ? this.base.host : `${this.o.bucket}.${this.base.host}`;
    const keyPath = r.key !== undefined ? `/${r.key.split('/').map(enc).join('/')}` : '';
    const path = pathStyle ? `${basePath}/${enc(this.o.bucket)}${keyPath}` : `${basePath}${keyPath || '/'}`;
    const query = canonicalQuery(r.query ?? {});
    const payloadHash = r.body ? sha256(r.body) : EMPTY_SHA256;
    const headers: Record<string, string> = { ...(r.headers ?? {}), host, 'x-amz-date': amzDate, 'x-amz-content-sha256': payloadHash };
    if (this.o.sessionToken) headers['x-amz-security-token'] = this.o.sessionToken;
    const authorization = signV4({ method: r.method, path, query, headers, payloadHash, amzDate, region: this.o.region, accessKeyId: this.o.accessKeyId, secretAccessKey: this.#secret });
    const { host: _host, ...sent } = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])); // fetch sets Host itself (same value)
    sent.authorization = authorization;
    const url = `${this.base.protocol}//${host}${path}${query ? `?${query}` : ''}`;
    return fetch(url, { method: r.method, headers: sent, body: r.body });
  }

  private async fail(res: Response, what: string): Promise<never> {
    const text = (await res.text().catch(() => '')).slice(0, 2000);
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? String(res.status);
    const msg = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? res.statusText;
    throw new S3Error(res.status, code, `S3 ${what}: ${res.status} ${code}: ${xmlText(msg)}`);
  }

  private expiryHeaders(opts: PutOptions): Record<string, string> {
    const ttl = opts.ttlSeconds ?? this.o.defaultTtlSeconds ?? 0;
    return ttl > 0 ? { [EXPIRES]: String(Date.now() + ttl * 1000) } : {};
  }

  private isExpired(res: Response, now = Date.now()): boolean {
    const e = res.headers.get(EXPIRES);
    return !!e && Number(e) <= now;
  }

  async put(key: string, data: Buffer | string, opts: PutOptions = {}): Promise<void> {
    const buf = toBuffer(data);
    if (buf.length > this.maxBytes) throw new BlobTooLargeError(key, buf.length, this.maxBytes, 's3');
    const res = await this.send({ method: 'PUT', key: this.objectKey(key), body: buf, headers: { 'content-type': 'application/octet-stream', ...this.expiryHeaders(opts) } });
    if (!res.ok) await this.fail(res, `PUT ${key}`);
    await res.arrayBuffer().catch(() => undefined);
  }

  /** One part in memory at a time: a single PUT when the stream fits in one part, else a multipart upload. */
  async putStream(key: string, data: Readable, opts: PutOptions = {}): Promise<number> {
    const objectKey = this.objectKey(key);
    const meta = { 'content-type': 'application/octet-stream', ...this.expiryHeaders(opts) };
    let uploadId: string | undefined;
    const parts: string[] = [];
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let total = 0;
    const flushPart = async () => {
      const body = Buffer.concat(pending);
      pending = [];
      pendingBytes = 0;
      if (!uploadId) {
        const res = await this.send({ method: 'POST', key: objectKey, query: { uploads: '' }, headers: meta });
        if (!res.ok) await this.fail(res, `CreateMultipartUpload ${key}`);
        uploadId = xmlText(/<UploadId>([^<]*)<\/UploadId>/.exec(await res.text())?.[1] ?? '');
        if (!uploadId) throw new S3Error(res.status, 'NoUploadId', `S3 CreateMultipartUpload ${key}: no UploadId in the answer`);
      }
      const res = await this.send({ method: 'PUT', key: objectKey, query: { partNumber: String(parts.length + 1), uploadId }, body });
      if (!res.ok) await this.fail(res, `UploadPart ${parts.length + 1} of ${key}`);
      await res.arrayBuffer().catch(() => undefined);
      parts.push(res.headers.get('etag') ?? '');
    };
    try {
      for await (const chunk of data) {
        const b = toBuffer(chunk as Buffer | string);
        total += b.length;
        if (total > this.maxBytes) throw new BlobTooLargeError(key, total, this.maxBytes, 's3');
        pending.push(b);
        pendingBytes += b.length;
        if (pendingBytes >= this.partBytes) await flushPart();
      }
      if (!uploadId) {
        await this.put(key, Buffer.concat(pending), opts);
        return total;
      }
      if (pendingBytes > 0) await flushPart();
      const xml = `<CompleteMultipartUpload>${parts.map((etag, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${etag.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
      const res = await this.send({ method: 'POST', key: objectKey, query: { uploadId }, body: Buffer.from(xml), headers: { 'content-type': 'application/xml' } });
      const text = await res.text();
      // S3 may answer 200 with an <Error> body for a failed completion.
      if (!res.ok || /<Error>/.test(text)) {
        const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? String(res.status);
        throw new S3Error(res.status, code, `S3 CompleteMultipartUpload ${key}: ${code}`);
      }
      return total;
    } catch (e) {
      data.destroy();
      if (uploadId) await this.send({ method: 'DELETE', key: objectKey, query: { uploadId } }).then((r) => r.arrayBuffer(), () => undefined).catch(() => undefined);
      throw e;
    }
  }

  /** GET of a live object, body not yet read; null when missing or expired (an expired one is deleted). */
  private async open(key: string): Promise<Response | null> {
    const res = await this.send({ method: 'GET', key: this.objectKey(key) });
    if (res.status === 404) return (await res.arrayBuffer().catch(() => undefined), null);
    if (!res.ok) await this.fail(res, `GET ${key}`);
    if (this.isExpired(res)) {
      await res.body?.cancel().catch(() => undefined);
      await this.delete(key);
      return null;
    }
    return res;
  }

  async get(key: string): Promise<Buffer | null> {
    const res = await this.open(key);
    return res && Buffer.from(await res.arrayBuffer());
  }

  async getStream(key: string): Promise<Readable | null> {
    const res = await this.open(key);
    if (!res) return null;
    return res.body ? Readable.fromWeb(res.body as unknown as WebReadableStream) : Readable.from([]);
  }

  private async head(objectKey: string): Promise<Response | null> {
    const res = await this.send({ method: 'HEAD', key: objectKey });
    if (res.status === 404) return null;
    if (!res.ok) await this.fail(res, `HEAD ${objectKey}`);
    return res;
  }

  async exists(key: string): Promise<boolean> {
    const res = await this.head(this.objectKey(key));
    if (!res) return false;
    if (this.isExpired(res)) {
      await this.delete(key);
      return false;
    }
    return true;
  }

  async delete(key: string): Promise<boolean> {
    const objectKey = this.objectKey(key);
    // S3's DELETE answers 204 whether or not the object was there: ask first.
    const had = !!(await this.head(objectKey));
    const res = await this.send({ method: 'DELETE', key: objectKey });
    if (!res.ok && res.status !== 404) await this.fail(res, `DELETE ${key}`);
    await res.arrayBuffer().catch(() => undefined);
    return had;
  }

  /** Every object under the prefix with its last-modified time (ListObjectsV2, paginated). */
  private async *list(): AsyncGenerator<{ key: string; lastModified: number }> {
    let token: string | undefined;
    do {
      const query: Record<string, string> = { 'list-type': '2', prefix: this.o.prefix ?? '' };
      if (token) query['continuation-token'] = token;
      const res = await this.send({ method: 'GET', query });
      if (!res.ok) await this.fail(res, 'ListObjectsV2');
      const xml = await res.text();
      for (const m of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        const key = xmlText(/<Key>([^<]*)<\/Key>/.exec(m[1])?.[1] ?? '');
        const lm = Date.parse(/<LastModified>([^<]*)<\/LastModified>/.exec(m[1])?.[1] ?? '');
        if (key) yield { key, lastModified: lm };
      }
      token = /<IsTruncated>true<\/IsTruncated>/.test(xml) ? xmlText(/<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1] ?? '') || undefined : undefined;
    } while (token);
  }

  /** Removes expired objects (and, with maxAgeSeconds, older ones); returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    const maxAgeMs = (this.o.maxAgeSeconds ?? 0) * 1000;
    let n = 0;
    for await (const o of this.list()) {
      let drop = maxAgeMs > 0 && now - o.lastModified > maxAgeMs;
      if (!drop) {
        const res = await this.head(o.key);
        drop = !!res && this.isExpired(res, now);
      }
      if (drop) {
        const res = await this.send({ method: 'DELETE', key: o.key });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok || res.status === 404) n++;
      }
    }
    return n;
  }
}
