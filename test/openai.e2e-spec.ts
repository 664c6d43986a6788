// The official openai npm client, unchanged, against real gateway + worker processes on a real
// Redis and a real ONNX model (the bundled tiny-dllm when trained, else the fixture model).
import OpenAI from 'openai';
import { GatewayClient } from '@dllm/contracts';
import { startCluster, type Cluster } from '../apps/demo/src/cluster';
import { testModelDir } from './helpers/fixture-model';

jest.setTimeout(120_000);

const MODEL = 'tiny-dllm';
let cluster: Cluster;
let openai: OpenAI;
let other: OpenAI;
let bundled = false;
const prompt = 'Q: 12+7=?\nA:';

beforeAll(async () => {
  const m = testModelDir();
  bundled = m.bundled;
  cluster = await startCluster({
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    mode: 'src',
    models: [{ name: MODEL, dir: m.dir }],
    workers: 1,
    env: { WORKER_CONCURRENCY: '8', RATE_LIMIT_REQUESTS: '100000' },
  });
  openai = new OpenAI({ baseURL: `${cluster.gatewayUrl}/v1`, apiKey: cluster.apiKey, maxRetries: 0 });
  other = new OpenAI({ baseURL: `${cluster.gatewayUrl}/v1`, apiKey: cluster.otherApiKey, maxRetries: 0 });
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
});

describe('OpenAI-compatible API with the official client', () => {
  it('lists the served model', async () => {
    const list = await openai.models.list();
    expect(list.data.map((m) => m.id)).toContain(MODEL);
  });

  it('completes (non-streaming) with usage and engine stats; dLLM knobs ride in extra body fields', async () => {
    const r = await openai.completions.create({
      model: MODEL,
      prompt,
      max_tokens: 24,
      temperature: 0,
      seed: 1,
      block_size: 8,
      threshold: 0.9,
    } as OpenAI.CompletionCreateParamsNonStreaming);
    expect(r.object).toBe('text_completion');
    expect(typeof r.choices[0].text).toBe('string');
    expect(r.choices[0].text.length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(r.choices[0].finish_reason);
    expect(r.usage!.completion_tokens).toBeGreaterThan(0);
    expect(r.usage!.completion_tokens).toBeLessThanOrEqual(24);
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + r.usage!.completion_tokens);
    const dllm = (r as unknown as { dllm: { forwards: number; tpf: number; job_id: string } }).dllm;
    expect(dllm.forwards).toBeGreaterThan(0);
    expect(dllm.tpf).toBeCloseTo(r.usage!.completion_tokens / dllm.forwards, 5);
    if (!bundled) expect(r.choices[0].finish_reason).toBe('length'); // the fixture model never stops
  });

  it('streams one SSE chunk per committed block, and the chunks add up to the non-streamed text', async () => {
    const params = { model: MODEL, prompt, max_tokens: 32, temperature: 0, seed: 3, block_size: 8 };
    const whole = await openai.completions.create(params as OpenAI.CompletionCreateParamsNonStreaming);
    const stream = await openai.completions.create({ ...params, stream: true } as OpenAI.CompletionCreateParamsStreaming);
    const texts: string[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.text) texts.push(chunk.choices[0].text);
      if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
      // Without stream_options.include_usage, OpenAI sends no usage field at all.
      expect('usage' in chunk).toBe(false);
    }
    expect(texts.join('')).toBe(whole.choices[0].text);
    expect(texts.length).toBeGreaterThanOrEqual(Math.ceil(whole.usage!.completion_tokens / 8) - 1);
    expect(finish).toBe(whole.choices[0].finish_reason);
  });

  it('stream_options.include_usage: usage null on every chunk, then one chunk with choices [] and the usage (OpenAI)', async () => {
    const params = { model: MODEL, prompt, max_tokens: 16, temperature: 0, seed: 3, block_size: 8 };
    const whole = await openai.completions.create(params as OpenAI.CompletionCreateParamsNonStreaming);
    for (const flag of [false, true]) {
      const streamed = { ...params, stream: true, stream_options: { include_usage: flag } } as OpenAI.CompletionCreateParamsStreaming;
      const stream = await openai.completions.create(streamed);
      const chunks: OpenAI.Completion[] = [];
      for await (const c of stream) chunks.push(c);
      if (!flag) {
        expect(chunks.every((c) => !('usage' in c))).toBe(true);
        continue;
      }
      const last = chunks[chunks.length - 1];
      expect(last.choices).toEqual([]);
      expect(last.usage).toEqual(whole.usage);
      expect(chunks.slice(0, -1).every((c) => c.usage === null && c.choices.length === 1)).toBe(true);
    }
    const messages = [{ role: 'user' as const, content: prompt }];
    const chatParams = { model: MODEL, messages, max_tokens: 8, temperature: 0, stream: true as const, stream_options: { include_usage: true } };
    const chat = await openai.chat.completions.create(chatParams);
    const cc: OpenAI.ChatCompletionChunk[] = [];
    for await (const c of chat) cc.push(c);
    expect(cc[cc.length - 1].choices).toEqual([]);
    expect(cc[cc.length - 1].usage!.total_tokens).toBeGreaterThan(0);
    expect(cc.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it('chat completions, streaming and not', async () => {
    const messages = [{ role: 'user' as const, content: prompt }];
    const r = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 16, temperature: 0 });
    expect(r.object).toBe('chat.completion');
    expect(r.choices[0].message.role).toBe('assistant');
    expect(r.choices[0].message.content!.length).toBeGreaterThan(0);
    const s = await openai.chat.completions.create({ model: MODEL, messages, max_tokens: 16, temperature: 0, stream: true });
    let text = '';
    let role: string | undefined;
    for await (const c of s) {
      role ??= c.choices[0]?.delta?.role;
      text += c.choices[0]?.delta?.content ?? '';
    }
    expect(role).toBe('assistant');
    expect(text).toBe(r.choices[0].message.content);
  });

  it('bad requests surface as typed 4xx errors in the client', async () => {
    await expect(openai.completions.create({ model: MODEL, prompt, temperature: 7 })).rejects.toMatchObject({ status: 422, error: { param: 'temperature' } });
    await expect(openai.completions.create({ model: MODEL, prompt, block_size: 0 } as OpenAI.CompletionCreateParamsNonStreaming)).rejects.toMatchObject({
      status: 422,
      error: { param: 'block_size' },
    });
    await expect(openai.completions.create({ model: 'nope', prompt })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(new OpenAI({ baseURL: `${cluster.gatewayUrl}/v1`, apiKey: 'sk-wrong', maxRetries: 0 }).models.list()).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    );
  });
});

describe('native job API', () => {
  it('runs a job, reports per-block progress, isolates owners', async () => {
    const c = new GatewayClient({ baseUrl: cluster.gatewayUrl, apiKey: cluster.apiKey });
    const job = await c.createJob({ model: MODEL, prompt, options: { maxNewTokens: 16, blockSize: 8 } });
    let view: Record<string, any> = {};
    for (let i = 0; i < 200 && !['completed', 'failed', 'cancelled'].includes(view.status); i++) {
      view = await c.getJob(job.id);
      if (!['completed', 'failed'].includes(view.status)) await new Promise((r) => setTimeout(r, 100));
    }
    expect(view.status).toBe('completed');
    expect(view.result.usage.completionTokens).toBeGreaterThan(0);
    expect(view.progress.blocks).toBeGreaterThanOrEqual(1);
    const res = await fetch(`${cluster.gatewayUrl}/v1/jobs/${job.id}`, { headers: { authorization: `Bearer ${cluster.otherApiKey}` } });
    expect(res.status).toBe(404);
    await expect(other.completions.create({ model: MODEL, prompt, max_tokens: 4 })).resolves.toBeTruthy();
  });

  it('cancel reaches the running job: it stops at a block boundary and keeps its partial output', async () => {
    const c = new GatewayClient({ baseUrl: cluster.gatewayUrl, apiKey: cluster.apiKey });
    // threshold 1: one token per forward, so the trained model's short answer still takes dozens of
    // forwards after the first block event and the cancel lands before it stops by itself (it raced before)
    const job = await c.createJob({ model: MODEL, prompt, options: { maxNewTokens: 4000, blockSize: 8, threshold: 1 } });
    // follow the SSE events until the first committed block, then cancel
    const res = await fetch(`${cluster.gatewayUrl}/v1/jobs/${job.id}/events`, { headers: { authorization: `Bearer ${cluster.apiKey}` } });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    let buf = '';
    let cancelled = false;
    let completed: any;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += Buffer.from(value).toString('utf8');
      if (!cancelled && buf.includes('event: progress')) {
        cancelled = true;
        const out = await c.cancelJob(job.id);
        expect(out.outcome).toBe('signalled');
      }
      const m = /event: completed\ndata: (.*)\n\n/.exec(buf);
      if (m) {
        completed = JSON.parse(m[1]);
        break;
      }
    }
    expect(cancelled).toBe(true);
    expect(completed.finishReason).toBe('cancelled');
    expect(completed.usage.completionTokens).toBeGreaterThan(0);
    expect(completed.usage.completionTokens).toBeLessThan(4000);
    expect(completed.text.length).toBeGreaterThan(0); // the partial output is kept
    expect((await c.getJob(job.id)).status).toBe('cancelled');
  });
});
