// The API in one minute, with the official `openai` client (plain Node.js ESM, Node 20.19+):
//   DLLM_API_KEY=sk-... node examples/completions.mjs
// Environment: DLLM_API_KEY (required: a key whose SHA-256 is in the gateway's API_KEYS),
// DLLM_BASE_URL (default http://127.0.0.1:8080/v1), DLLM_MODEL (default tiny-dllm).
// Start a gateway and a worker first: README "Running the gateway and a worker by hand".
import OpenAI from 'openai';

const apiKey = process.env.DLLM_API_KEY;
if (!apiKey) {
  console.error('set DLLM_API_KEY to an API key the gateway accepts (README: "Running the gateway and a worker by hand")');
  process.exit(2);
}
const model = process.env.DLLM_MODEL ?? 'tiny-dllm';
const client = new OpenAI({ baseURL: process.env.DLLM_BASE_URL ?? 'http://127.0.0.1:8080/v1', apiKey, maxRetries: 0 });
const prompt = 'Q: 347+589=?\nA:';

// 1. A completion. dLLM decoding options ride as extra body fields next to the OpenAI ones.
const r = await client.completions.create({ model, prompt, max_tokens: 96, temperature: 0, policy: 'fast-dllm-v2', threshold: 0.9 });
console.log(`completion: ${JSON.stringify(r.choices[0].text)} (finish: ${r.choices[0].finish_reason})`);
console.log(`usage: ${JSON.stringify(r.usage)}`);
console.log(`dllm: ${JSON.stringify(r.dllm)}`); // { forwards, tpf, wall_ms, ... }: engine statistics of this request

// 2. Streaming: one chunk per committed block.
const stream = await client.completions.create({ model, prompt, max_tokens: 96, temperature: 0, stream: true });
let chunks = 0;
let text = '';
for await (const chunk of stream) {
  if (chunk.choices[0]?.text) {
    chunks++;
    text += chunk.choices[0].text;
  }
}
console.log(`stream: ${chunks} chunks, ${JSON.stringify(text)}`);

// 3. Chat completions.
const chat = await client.chat.completions.create({ model, messages: [{ role: 'user', content: prompt }], max_tokens: 64, temperature: 0 });
console.log(`chat: ${JSON.stringify(chat.choices[0].message.content)}`);
