// Server-Sent Events (https://html.spec.whatwg.org/multipage/server-sent-events.html) for every
// streaming route: job events and streamed completions. A comment line (`: ping`) goes out every
// heartbeat so proxies and clients can tell a quiet stream from a dead one; every stream ends with a
// final event, after which the response is closed.
import type { FastifyReply } from 'fastify';

/** Default interval of the `: ping` comment lines. */
export const SSE_HEARTBEAT_MS = 15_000;

export interface SseOptions {
  headers?: Record<string, string>;
  /** Interval of the heartbeat comment, ms (default SSE_HEARTBEAT_MS; 0 = none). */
  heartbeatMs?: number;
}

export interface SseStream {
  /** Aborted when the client goes away before the stream ended. */
  signal: AbortSignal;
  /** `data: <json>` (or the string as is). */
  data(obj: unknown): void;
  /** `event: <name>` + `data: <json>`. */
  event(name: string, obj: unknown): void;
  /** Stops the heartbeat and closes the response (idempotent). */
  end(): void;
}

/** Takes over the raw response for Server-Sent Events; returns a writer and a "client gone" signal. */
export function openSse(reply: FastifyReply, opts: SseOptions = {}): SseStream {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    ...opts.headers,
  });
  raw.flushHeaders?.();
  const gone = new AbortController();
  const every = opts.heartbeatMs ?? SSE_HEARTBEAT_MS;
  const heartbeat = every > 0 ? setInterval(() => !raw.writableEnded && raw.write(': ping\n\n'), every) : undefined;
  heartbeat?.unref();
  raw.on('close', () => {
    if (heartbeat) clearInterval(heartbeat);
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
      if (heartbeat) clearInterval(heartbeat);
      if (!raw.writableEnded) raw.end();
    },
  };
}
