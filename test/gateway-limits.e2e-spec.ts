// The gateway's edge under abuse (issue 13 faults 4, 7, 9; issue 12 uploads), in-process against a
// real Redis, no worker: bodies are refused before they are read (auth, content type, size), uploads
// stream with bounded memory, SSE streams beat and always end, prototype names are just unknown names.
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { hashApiKey } from '../apps/gateway/src/auth/api-keys';
import { startGateway } from '../apps/gateway/src/bootstrap';

jest.setTimeout(60_000);

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const tag = `gwlim${process.pid}${Date.now().toString(36)}`;
const model = `lim-${tag}`;
const prefix = `${tag}:`;
const KEY = 'sk-limits-alice';
const auth = { authorization: `Bearer ${KEY}` };
const MB = 1024 * 1024;
let app: NestFastifyApplication;
let base: string;
let port: number;
let storage: string;

beforeAll(async () => {
  storage = fs.mkdtempSync(path.join(os.tmpdir(), 'gw-limits-'));
  app = await startGateway(
    {
      host: '127.0.0.1',
      port: 0,
      redisUrl,
      queuePrefix: tag,
      keyPrefix: prefix,
      apiKeys: [{ name: 'alice', sha256: hashApiKey(KEY) }],
      rateLimit: { requests: 10_000, windowMs: 60_000 },
      bodyLimitBytes: 64 * 1024,
      fileLimitBytes: 160 * MB,
      models: [{ name: model }],
      storageDir: storage,
      batch: { maxLines: 5, sweepMs: 0, allowShortWindows: false },
      requestTimeoutMs: 5000,
      retentionSeconds: 600,
      sseHeartbeatMs: 200,
    },
    { docsUi: false, logLevels: ['error'] },
  );
  base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  port = Number(new URL(base).port);
});

afterAll(async () => {
  await app?.close();
  const q = new Queue(`dllm.generation.${model}`, { prefix: tag, connection: { url: redisUrl } });
  await q.obliterate({ force: true });
  await q.close();
  const r = new Redis(redisUrl);
  const keys = await r.keys(`${prefix}*`);
  if (keys.length) await r.del(...keys);
  await r.quit();
  fs.rmSync(storage, { recursive: true, force: true });
});

interface RawAnswer {
  status: number;
  body: string;
  /** Bytes of the body the client had written when the answer came. */
  sentWhenAnswered: number;
  ms: number;
}

/**
 * POSTs a body of `total` bytes (declared in Content-Length unless chunked) in 64 KiB chunks, slowly
 * enough that a server reading it all would take seconds; resolves as soon as an answer arrives.
 */
function postStreaming(p: string, headers: Record<string, string>, total: number, opts: { chunked?: boolean; chunk?: Buffer } = {}): Promise<RawAnswer> {
  const chunk = opts.chunk ?? Buffer.alloc(64 * 1024, 'a');
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const all = { ...headers, ...(opts.chunked ? {} : { 'content-length': String(total) }) };
    const req = http.request({ host: '127.0.0.1', port, path: p, method: 'POST', headers: all }, (res) => {
      answered = true;
      const at = sent;
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode!, body, sentWhenAnswered: at, ms: Date.now() - started });
      });
    });
    req.on('error', (e) => {
      if (!answered) reject(e);
    });
    const pump = () => {
      if (answered || req.destroyed) return;
      if (sent >= total) {
        req.end();
        return;
      }
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      const ok = req.write(n === chunk.length ? chunk : chunk.subarray(0, n));
      // ~16 MB/s at most: a 90 MB body would take over 5 s to send whole.
      if (ok) setTimeout(pump, 4);
      else req.once('drain', () => setTimeout(pump, 4));
    };
    pump();
  });
}

async function healthzMs(): Promise<number> {
  const t = Date.now();
  const r = await fetch(`${base}/healthz`);
  expect(r.status).toBe(200);
  return Date.now() - t;
}

describe('bodies are refused before they are read (issue 13 fault 7)', () => {
  it('an unauthenticated 90 MB body gets 401 after a small part of it was sent', async () => {
    const r = await postStreaming('/v1/completions', { 'content-type': 'application/json' }, 90 * MB);
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body).error.code).toBe('missing_api_key');
    expect(r.sentWhenAnswered).toBeLessThan(8 * MB);
    const wrong = await postStreaming('/v1/files', { authorization: 'Bearer nope', 'content-type': 'multipart/form-data; boundary=x' }, 90 * MB);
    expect(wrong.status).toBe(401);
    expect(wrong.sentWhenAnswered).toBeLessThan(8 * MB);
  });

  it('a 20 MB text/plain body to /v1/completions is a prompt 415; /healthz stays responsive meanwhile', async () => {
    const pending = postStreaming('/v1/completions', { ...auth, 'content-type': 'text/plain' }, 20 * MB);
    const h = await healthzMs();
    const r = await pending;
    expect(r.status).toBe(415);
    expect(JSON.parse(r.body).error).toMatchObject({ code: 'unsupported_media_type', type: 'invalid_request_error' });
    expect(r.sentWhenAnswered).toBeLessThan(8 * MB);
    expect(r.ms).toBeLessThan(3000);
    expect(h).toBeLessThan(1000);
  });

  it('every route has a content-type allow-list: JSON routes refuse form bodies, uploads refuse JSON', async () => {
    const post = (p: string, type: string, body: string) => fetch(`${base}${p}`, { method: 'POST', headers: { ...auth, 'content-type': type }, body });
    for (const p of ['/v1/completions', '/v1/chat/completions', '/v1/jobs', '/v1/batches', '/v1/rollouts', '/v1/distill']) {
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x']) {
        const r = await post(p, type, 'a=b');
        expect([p, type, r.status]).toEqual([p, type, 415]);
      }
    }
    expect((await post('/v1/files', 'application/json', '{}')).status).toBe(415);
    expect((await post('/v1/files', 'application/jsonl', '{}\n')).status).toBe(415);
  });

  it('a declared length over the limit is a 413 before the body is sent; a chunked one is cut off while it streams', async () => {
    const declared = await postStreaming('/v1/completions', { ...auth, 'content-type': 'application/json' }, 30 * MB);
    expect(declared.status).toBe(413);
    expect(declared.sentWhenAnswered).toBeLessThan(8 * MB);
    const chunked = await postStreaming('/v1/completions', { ...auth, 'content-type': 'application/json' }, 30 * MB, { chunked: true });
    expect(chunked.status).toBe(413);
    expect(chunked.sentWhenAnswered).toBeLessThan(8 * MB);
    expect(await healthzMs()).toBeLessThan(1000);
  });
});

describe('uploads stream to the file store (issue 12: @fastify/multipart)', () => {
  it('a 128 MB upload, 2000x the JSON body limit, lands on disk whole with bounded gateway memory', async () => {
    const size = 128 * MB;
    const line = `${JSON.stringify({ custom_id: 'x', method: 'POST', url: '/v1/completions', body: { model, prompt: 'hi' } })}\n`;
    const boundary = `----limits${Date.now()}`;
    const head = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n`,
    );
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const chunk = Buffer.from(line.repeat(Math.floor((256 * 1024) / line.length)));
    const fileBytes = Math.floor(size / chunk.length) * chunk.length;
    let peak = 0;
    const before = process.memoryUsage().arrayBuffers;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers - before)), 5);
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/files',
          method: 'POST',
          headers: { ...auth, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + fileBytes + tail.length) },
        },
        (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        },
      );
      req.on('error', reject);
      req.write(head);
      let sent = 0;
      const pump = () => {
        while (sent < fileBytes) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end(tail);
      };
      pump();
    });
    clearInterval(sampler);
    expect(answer.status).toBe(200);
    const f = JSON.parse(answer.body);
    expect(f).toMatchObject({ object: 'file', bytes: fileBytes, filename: 'big.jsonl', purpose: 'batch' });
    const onDisk = path.join(storage, 'files', f.id.slice(-2), f.id);
    expect(fs.statSync(onDisk).size).toBe(fileBytes);
    // Buffered, the body alone would be 128 MB (twice that with the copy the old reader made); streamed,
    // what is left is socket chunks in flight and garbage the collector has not taken yet.
    console.log(`upload of ${fileBytes} bytes: peak Buffer memory +${(peak / MB).toFixed(1)} MB`);
    expect(peak).toBeLessThan(64 * MB);
  });
});

/** Reads an SSE response until it ends; returns the events and whether `: ping` comments came. */
async function readSse(url: string, onOpen?: () => Promise<void>): Promise<{ events: { event: string; data: any }[]; pings: number }> {
  const res = await fetch(url, { headers: auth });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  let pings = 0;
  const events: { event: string; data: any }[] = [];
  let opened = false;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (block.startsWith(':')) {
        pings++;
        if (!opened && onOpen) {
          opened = true;
          await onOpen();
        }
        continue;
      }
      const ev = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = /^data: (.*)$/m.exec(block)?.[1];
      events.push({ event: ev, data: data ? JSON.parse(data) : null });
    }
  }
  return { events, pings };
}

describe('SSE streams beat and always end (issue 13 fault 4)', () => {
  const submit = async () => {
    const body = JSON.stringify({ model, prompt: 'hi', options: { maxNewTokens: 4 } });
    const r = await fetch(`${base}/v1/jobs`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body });
    expect(r.status).toBe(202);
    return ((await r.json()) as { id: string }).id;
  };

  it('a queued job cancelled while followed: heartbeat, then a final `cancelled` event and the end; it stays visible as cancelled', async () => {
    const id = await submit();
    const { events, pings } = await readSse(`${base}/v1/jobs/${id}/events`, async () => {
      const c = await fetch(`${base}/v1/jobs/${id}/cancel`, { method: 'POST', headers: auth });
      expect(((await c.json()) as { outcome: string }).outcome).toBe('removed');
    });
    expect(pings).toBeGreaterThanOrEqual(1);
    expect(events).toEqual([{ event: 'cancelled', data: { id, status: 'cancelled' } }]);
    const view = await fetch(`${base}/v1/jobs/${id}`, { headers: auth });
    expect(view.status).toBe(200);
    expect(await view.json()).toMatchObject({ id, status: 'cancelled', state: 'removed', result: null });
    // Following it again ends at once; cancelling again says it is finished.
    expect((await readSse(`${base}/v1/jobs/${id}/events`)).events).toEqual([{ event: 'cancelled', data: { id, status: 'cancelled' } }]);
    const again = await fetch(`${base}/v1/jobs/${id}/cancel`, { method: 'POST', headers: auth });
    expect(await again.json()).toMatchObject({ outcome: 'finished' });
  });

  it('a job that leaves its queue without an outcome ends the stream with `lost`', async () => {
    const id = await submit();
    const q = new Queue(`dllm.generation.${model}`, { prefix: tag, connection: { url: redisUrl } });
    try {
      const { events } = await readSse(`${base}/v1/jobs/${id}/events`, async () => {
        await (await q.getJob(id))!.remove(); // trimmed, or lost with Redis: no cancellation record
      });
      expect(events.map((e) => e.event)).toEqual(['lost']);
      expect(events[0].data.id).toBe(id);
    } finally {
      await q.close();
    }
  });

  it('a streamed completion whose job is cancelled while queued ends with an error event, not a hang', async () => {
    const body = JSON.stringify({ model, prompt: 'hi', max_tokens: 4, stream: true });
    const res = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body });
    expect(res.status).toBe(200);
    const q = new Queue(`dllm.generation.${model}`, { prefix: tag, connection: { url: redisUrl } });
    try {
      let jobId: string | undefined;
      for (let i = 0; i < 100 && !jobId; i++) {
        jobId = (await q.getWaiting()).map((j) => j.id!).find(Boolean);
        if (!jobId) await new Promise((r) => setTimeout(r, 50));
      }
      const cancel = await fetch(`${base}/v1/jobs/${jobId}/cancel`, { method: 'POST', headers: auth });
      expect(((await cancel.json()) as { outcome: string }).outcome).toBe('removed');
      const text = await res.text();
      expect(text).toMatch(/: ping|data: /);
      expect(text).toContain('"code":"job_cancelled"');
    } finally {
      await q.close();
    }
  });
});

describe('names from Object.prototype are unknown names (issue 13 fault 9)', () => {
  it('404 on every route that looks a thing up by a name or id', async () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      const paths = [`/v1/jobs/${name}`, `/v1/jobs/${name}/result`, `/v1/files/${name}`, `/v1/files/${name}/content`, `/v1/batches/${name}`];
      paths.push(`/v1/rollouts/${name}`, `/v1/distill/${name}`, `/v1/distill/${name}/files/${name}`, `/v1/models/${name}/versions`);
      for (const p of paths) {
        const r = await fetch(`${base}${p}`, { headers: auth });
        expect([p, r.status]).toEqual([p, 404]);
      }
    }
  });
});
