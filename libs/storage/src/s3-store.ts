// Values in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, R2...) through the AWS SDK v3
// (@aws-sdk/client-s3; streams through @aws-sdk/lib-storage's Upload). The SDK signs (SigV4), retries
// throttling / 5xx / timeouts (standard retry mode, `maxAttempts` attempts per call), bounds each
// attempt (`requestTimeoutMs` until the answer's headers, the same as an idle bound while a body
// streams, `connectTimeoutMs` to connect), and finds credentials: static keys when given, else the
// default provider chain (env, shared config / SSO, web identity = EKS IRSA, ECS / EC2 instance roles).
// S3 has no per-object TTL, so the expiry is object metadata (x-amz-meta-dllm-expires, milliseconds
// since the epoch) enforced on read and by sweep(); in production add a bucket lifecycle rule for the
// prefix as well (sweep() lists and HEADs every object).
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
  type GetObjectCommandOutput,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Readable } from 'node:stream';
import { BlobTooLargeError, checkKey, toBuffer, type BlobStore, type PutOptions } from './blob-store';

export interface S3BlobStoreOptions {
  /** e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:9000. */
  endpoint: string;
  bucket: string;
  region: string;
  /**
   * Static credentials: both keys or neither. Without them the SDK's default provider chain finds
   * credentials (AWS_* env, ~/.aws config and SSO, web identity token = EKS IRSA, ECS / EC2 roles).
   */
  accessKeyId?: string;
  secretAccessKey?: string;
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
  /** Multipart part size for putStream in bytes (S3's minimum, and lib-storage's, is 5 MiB). Default 8 MiB. */
  partBytes?: number;
  /** Attempts per call, the first included (SDK standard retry mode: 5xx, SlowDown, timeouts). Default 3. */
  maxAttempts?: number;
  /** Per attempt: ms until the answer's headers (an uploaded body included); also the idle bound while a body streams. Default 60000. */
  requestTimeoutMs?: number;
  /** Per attempt: ms to open the TCP/TLS connection. Default 5000. */
  connectTimeoutMs?: number;
}

/** Metadata key of the expiry (sent as the x-amz-meta-dllm-expires header). */
const EXPIRES = 'dllm-expires';

/**
 * A failed S3 call: the HTTP status (0 when no answer came: timeout, refused connection), the S3
 * error code ('SlowDown', 'InvalidAccessKeyId', 'TimeoutError'...) and how many attempts were made.
 */
export class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly attempts = 1,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'S3Error';
  }
}

interface SdkError {
  name?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
  $response?: { statusCode?: number };
}

/** An SDK error as an S3Error naming the operation; our own errors pass through. */
function toS3Error(e: unknown, what: string): Error {
  if (e instanceof BlobTooLargeError || e instanceof S3Error) return e;
  const x = (e ?? {}) as SdkError;
  const status = x.$metadata?.httpStatusCode ?? x.$response?.statusCode ?? 0;
  const code = x.Code ?? x.name ?? 'Error';
  const attempts = x.$metadata?.attempts ?? 1;
  const tries = attempts > 1 ? ` (after ${attempts} attempts)` : '';
  return new S3Error(status, code, `S3 ${what}: ${status || 'no answer'} ${code}: ${x.message ?? String(e)}${tries}`, attempts, { cause: e });
}

const isNotFound = (e: unknown) => (e as SdkError)?.$metadata?.httpStatusCode === 404;

export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  readonly maxBytes: number;
  private readonly partBytes: number;
  private readonly o: Omit<S3BlobStoreOptions, 'secretAccessKey' | 'sessionToken'>;
  /** The SDK client; private (#) so that inspecting or serializing the store never shows its credentials. */
  readonly #client: S3Client;

  /** @throws Error when only one of accessKeyId / secretAccessKey is given. */
  constructor(o: S3BlobStoreOptions) {
    const { secretAccessKey, sessionToken, ...rest } = o;
    if (!!o.accessKeyId !== !!secretAccessKey) throw new Error('S3BlobStore: give both accessKeyId and secretAccessKey, or neither (default credential chain)');
    this.o = rest;
    this.maxBytes = o.maxBytes ?? Number.MAX_SAFE_INTEGER;
    this.partBytes = o.partBytes ?? 8 << 20;
    const requestTimeout = o.requestTimeoutMs ?? 60_000;
    this.#client = new S3Client({
      endpoint: o.endpoint,
      region: o.region,
      forcePathStyle: o.forcePathStyle ?? true,
      credentials: o.accessKeyId && secretAccessKey ? { accessKeyId: o.accessKeyId, secretAccessKey, sessionToken } : undefined,
      retryMode: 'standard',
      maxAttempts: o.maxAttempts ?? 3,
      requestHandler: new NodeHttpHandler({
        connectionTimeout: o.connectTimeoutMs ?? 5_000,
        requestTimeout,
        throwOnRequestTimeout: true,
        socketTimeout: requestTimeout,
      }),
      // CRC checksums only where the API requires them: many S3-compatible servers reject the
      // aws-chunked trailing checksums the SDK would otherwise send with every streamed upload.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /** The SDK client (to add middleware, e.g. in tests); it is closed by close(). */
  get client(): S3Client {
    return this.#client;
  }

  private objectKey(key: string): string {
    return `${this.o.prefix ?? ''}${checkKey(key)}`;
  }

  /** Runs one SDK call; its failure becomes an S3Error naming `what`. */
  private async call<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw toS3Error(e, what);
    }
  }

  private metadata(opts: PutOptions): Record<string, string> {
    const ttl = opts.ttlSeconds ?? this.o.defaultTtlSeconds ?? 0;
    return ttl > 0 ? { [EXPIRES]: String(Date.now() + ttl * 1000) } : {};
  }

  private isExpired(res: GetObjectCommandOutput | HeadObjectCommandOutput, now = Date.now()): boolean {
    const e = res.Metadata?.[EXPIRES];
    return !!e && Number(e) <= now;
  }

  async put(key: string, data: Buffer | string, opts: PutOptions = {}): Promise<void> {
    const buf = toBuffer(data);
    if (buf.length > this.maxBytes) throw new BlobTooLargeError(key, buf.length, this.maxBytes, 's3');
    const cmd = new PutObjectCommand({
      Bucket: this.o.bucket,
      Key: this.objectKey(key),
      Body: buf,
      ContentType: 'application/octet-stream',
      Metadata: this.metadata(opts),
    });
    await this.call(`PUT ${key}`, () => this.#client.send(cmd));
  }

  /**
   * One PutObject when the stream fits in one part, else a multipart upload (lib-storage Upload, one
   * part in flight); a failed or oversized stream aborts the upload and leaves no object. Returns the bytes.
   */
  async putStream(key: string, data: Readable, opts: PutOptions = {}): Promise<number> {
    const Key = this.objectKey(key);
    let total = 0;
    const maxBytes = this.maxBytes;
    async function* counted() {
      for await (const chunk of data) {
        const b = toBuffer(chunk as Buffer | string);
        total += b.length;
        if (total > maxBytes) throw new BlobTooLargeError(key, total, maxBytes, 's3');
        yield b;
      }
    }
    const body = Readable.from(counted(), { objectMode: false });
    const upload = new Upload({
      client: this.#client,
      params: { Bucket: this.o.bucket, Key, Body: body, ContentType: 'application/octet-stream', Metadata: this.metadata(opts) },
      partSize: this.partBytes,
      queueSize: 1,
      // Aborted below instead, so that a failing abort (some S3-compatible servers lack it; a lifecycle
      // rule for incomplete uploads cleans up there) never hides why the upload failed.
      leavePartsOnError: true,
    });
    try {
      await this.call(`upload ${key}`, () => upload.done());
      return total;
    } catch (e) {
      data.destroy();
      body.destroy();
      if (upload.uploadId) {
        const abort = new AbortMultipartUploadCommand({ Bucket: this.o.bucket, Key, UploadId: upload.uploadId });
        await this.#client.send(abort).catch(() => undefined);
      }
      throw e;
    }
  }

  /** GET of a live object, body not yet read; null when missing or expired (an expired one is deleted). */
  private async open(key: string): Promise<Readable | null> {
    let res: GetObjectCommandOutput;
    try {
      res = await this.#client.send(new GetObjectCommand({ Bucket: this.o.bucket, Key: this.objectKey(key) }));
    } catch (e) {
      if (isNotFound(e)) return null;
      throw toS3Error(e, `GET ${key}`);
    }
    const body = (res.Body as Readable | undefined) ?? Readable.from([]);
    if (this.isExpired(res)) {
      body.destroy();
      await this.delete(key);
      return null;
    }
    return body;
  }

  async get(key: string): Promise<Buffer | null> {
    const body = await this.open(key);
    if (!body) return null;
    const parts: Buffer[] = [];
    await this.call(`GET ${key} (body)`, async () => {
      for await (const c of body) parts.push(c as Buffer);
    });
    return Buffer.concat(parts);
  }

  /** The object's body as it arrives; a stalled body errors after requestTimeoutMs of silence. */
  async getStream(key: string): Promise<Readable | null> {
    return this.open(key);
  }

  private async head(objectKey: string): Promise<HeadObjectCommandOutput | null> {
    try {
      return await this.#client.send(new HeadObjectCommand({ Bucket: this.o.bucket, Key: objectKey }));
    } catch (e) {
      if (isNotFound(e)) return null;
      throw toS3Error(e, `HEAD ${objectKey}`);
    }
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
    await this.call(`DELETE ${key}`, () => this.#client.send(new DeleteObjectCommand({ Bucket: this.o.bucket, Key: objectKey })));
    return had;
  }

  /** Removes expired objects (and, with maxAgeSeconds, older ones) under the prefix (ListObjectsV2); returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    const maxAgeMs = (this.o.maxAgeSeconds ?? 0) * 1000;
    let n = 0;
    const pages = paginateListObjectsV2({ client: this.#client }, { Bucket: this.o.bucket, Prefix: this.o.prefix ?? '' });
    await this.call('ListObjectsV2', async () => {
      for await (const page of pages) {
        for (const o of page.Contents ?? []) {
          if (!o.Key) continue;
          let drop = maxAgeMs > 0 && !!o.LastModified && now - o.LastModified.getTime() > maxAgeMs;
          if (!drop) {
            const res = await this.head(o.Key);
            drop = !!res && this.isExpired(res, now);
          }
          if (drop) {
            await this.#client.send(new DeleteObjectCommand({ Bucket: this.o.bucket, Key: o.Key }));
            n++;
          }
        }
      }
    });
    return n;
  }

  /** Closes the SDK client's sockets. */
  async close(): Promise<void> {
    this.#client.destroy();
  }
}
