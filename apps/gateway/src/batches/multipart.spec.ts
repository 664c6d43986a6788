// readMultipart on a real Fastify instance with @fastify/multipart registered as the gateway does it.
import Fastify, { type FastifyInstance } from 'fastify';
import { ApiError } from '../http/api-error';
import { readMultipart, registerMultipart } from './multipart';

let app: FastifyInstance;
const received: { name: string; filename: string; bytes: number; text: string }[] = [];

beforeAll(async () => {
  app = Fastify();
  await registerMultipart(app, 1024);
  app.post('/up', async (req, reply) => {
    received.length = 0;
    try {
      const fields = await readMultipart(req, async (f) => {
        const chunks: Buffer[] = [];
        for await (const c of f.stream) chunks.push(c as Buffer);
        const b = Buffer.concat(chunks);
        received.push({ name: f.name, filename: f.filename, bytes: b.length, text: b.toString() });
      });
      return { fields: Object.fromEntries(fields) };
    } catch (e) {
      const err = e as ApiError;
      return reply.status(err.status ?? 500).send(err instanceof ApiError ? err.body() : { message: String(e) });
    }
  });
  await app.ready();
});

afterAll(() => app.close());

async function post(form: FormData) {
  const res = new Response(form);
  const body = Buffer.from(await res.arrayBuffer());
  return app.inject({ method: 'POST', url: '/up', headers: { 'content-type': res.headers.get('content-type')! }, payload: body });
}

describe('multipart uploads (@fastify/multipart)', () => {
  it('reads fields and a file exactly as fetch/openai encode them, file streamed to the sink', async () => {
    const form = new FormData();
    form.set('purpose', 'batch');
    const content = '{"a":1}\r\n{"b":"\\u00e9 --x"}\n';
    form.set('file', new Blob([content]), 'in.jsonl');
    const r = await post(form);
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ fields: { purpose: 'batch' } });
    expect(received).toEqual([{ name: 'file', filename: 'in.jsonl', bytes: Buffer.byteLength(content), text: content }]);
  });

  it('a file over the per-file limit is a 413, not a truncated success', async () => {
    const form = new FormData();
    form.set('file', new Blob(['x'.repeat(5000)]), 'big.jsonl');
    const r = await post(form);
    expect(r.statusCode).toBe(413);
    expect(r.json().error.code).toBe('request_too_large');
  });

  it('field names from Object.prototype are plain fields or refused, never lookups', async () => {
    const form = new FormData();
    form.set('purpose', 'batch');
    form.set('constructor', 'x');
    const r = await post(form);
    // busboy/@fastify/multipart refuses prototype names outright.
    expect(r.statusCode).toBe(400);
    expect(r.json().error.code).toBe('invalid_multipart');
  });

  it('a file part cut off before its closing boundary is a 400', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/up',
      headers: { 'content-type': 'multipart/form-data; boundary=abc' },
      payload: '--abc\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n{"a":1}',
    });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.code).toBe('invalid_multipart');
  });
});
