// A real S3-compatible server for tests: s3rver (a devDependency; an S3 API over a local directory,
// with access-key checking but no V4 signature check) in-process on a free localhost port, with
// the buckets already created. Used by libs/storage's S3BlobStore test and the object-storage
// integration test of the gateway and worker stores.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require('s3rver') as new (o: Record<string, unknown>) => { run(): Promise<{ port: number }>; close(): Promise<void> };

/** s3rver's built-in account. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface TestS3 {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The directory s3rver keeps objects in (<dir>/<bucket>/...). */
  dir: string;
  /** Every object key in a bucket (optionally under a prefix), as the server stores them. */
  keys(bucket: string, prefix?: string): string[];
  close(): Promise<void>;
}

export async function startS3rver(buckets: string[] = ['dllm']): Promise<TestS3> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-s3rver-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: buckets.map((name) => ({ name })) });
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    ...S3RVER_CREDENTIALS,
    dir,
    keys(bucket, prefix = '') {
      // s3rver's file layout: <dir>/<bucket>/<key>._S3rver_object (plus metadata/md5 sidecars).
      const root = path.join(dir, bucket);
      const out: string[] = [];
      const walk = (d: string) => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
          const p = path.join(d, e.name);
          if (e.isDirectory()) walk(p);
          else if (e.name.endsWith('._S3rver_object')) out.push(path.relative(root, p).slice(0, -'._S3rver_object'.length).split(path.sep).join('/'));
        }
      };
      if (fs.existsSync(root)) walk(root);
      return out.filter((k) => k.startsWith(prefix)).sort();
    },
    async close() {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
