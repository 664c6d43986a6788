// A small typed client for the gateway's batch, file and job endpoints (the CLI, the demo, the
// benchmark and the tests use it; completions are better served by the official openai client).
import type { Batch, FileObject } from './batches';
import type { ApiErrorBody } from './common';

export class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody | undefined,
    message: string,
  ) {
    super(message);
  }
}

export interface GatewayClientOptions {
  baseUrl: string;
  apiKey: string;
  /** Per-request timeout (ms). */
  timeoutMs?: number;
}

export class GatewayClient {
  readonly baseUrl: string;
  constructor(private readonly opts: GatewayClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
  }

  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const init: RequestInit = {
      method,
      headers: { authorization: `Bearer ${this.opts.apiKey}`, ...headers },
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 120_000),
    };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] = 'application/json';
    }
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, init);
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      throw new GatewayError(0, undefined, `cannot reach the gateway at ${this.baseUrl} (${cause ?? (e as Error).message})`);
    }
    const text = await res.text();
    if (!res.ok) {
      let parsed: ApiErrorBody | undefined;
      try {
        parsed = JSON.parse(text) as ApiErrorBody;
      } catch {
        /* not JSON */
      }
      throw new GatewayError(res.status, parsed, `${method} ${path}: ${res.status} ${parsed?.error?.message ?? text.slice(0, 200)}`);
    }
    const type = (res.headers.get('content-type') ?? '').split(';')[0].trim();
    return (type === 'application/json' ? JSON.parse(text) : text) as T;
  }

  uploadFile(content: string | Uint8Array, filename: string, purpose = 'batch'): Promise<FileObject> {
    const form = new FormData();
    form.set('purpose', purpose);
    form.set('file', new Blob([typeof content === 'string' ? content : Buffer.from(content)], { type: 'application/jsonl' }), filename);
    return this.request('POST', '/v1/files', form);
  }

  createBatch(req: { input_file_id: string; endpoint: string; completion_window: string; metadata?: Record<string, string> }): Promise<Batch> {
    return this.request('POST', '/v1/batches', req);
  }

  getBatch(id: string): Promise<Batch> {
    return this.request('GET', `/v1/batches/${encodeURIComponent(id)}`);
  }

  cancelBatch(id: string): Promise<Batch> {
    return this.request('POST', `/v1/batches/${encodeURIComponent(id)}/cancel`);
  }

  fileContent(id: string): Promise<string> {
    return this.request('GET', `/v1/files/${encodeURIComponent(id)}/content`);
  }

  getJob(id: string): Promise<Record<string, unknown>> {
    return this.request('GET', `/v1/jobs/${encodeURIComponent(id)}`);
  }

  createJob(req: { model: string; prompt: string; options?: Record<string, unknown> }): Promise<{ id: string; status: string }> {
    return this.request('POST', '/v1/jobs', req);
  }

  cancelJob(id: string): Promise<{ id: string; outcome: string }> {
    return this.request('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`);
  }

  /** Polls a batch until it reaches a final status, reporting each poll. */
  async waitBatch(id: string, onPoll: (b: Batch) => void = () => {}, intervalMs = 500, signal?: AbortSignal): Promise<Batch> {
    for (;;) {
      const b = await this.getBatch(id);
      onPoll(b);
      if (['completed', 'failed', 'expired', 'cancelled'].includes(b.status)) return b;
      if (signal?.aborted) return b;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}
