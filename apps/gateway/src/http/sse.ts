import type { FastifyReply } from 'fastify';

/** Takes over the raw response for Server-Sent Events; returns a writer and a "client gone" signal. */
export function openSse(reply: FastifyReply, extraHeaders: Record<string, string> = {}) {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    ...extraHeaders,
  });
  raw.flushHeaders?.();
  const gone = new AbortController();
  raw.on('close', () => {
    if (!raw.writableFinished) gone.abort();
  });
  return {
    signal: gone.signal,
    data(obj: unknown) {
      if (!raw.writableEnded) raw.write(`data: ${typeof obj === 'string' ? obj : JSON.stringify(obj)}\n\n`);
    },
    event(name: string, obj: unknown) {
      if (!raw.writableEnded) raw.write(`event: ${name}\ndata: ${JSON.stringify(obj)}\n\n`);
    },
    end() {
      if (!raw.writableEnded) raw.end();
    },
  };
}
