import { chatCompletionRequestSchema, completionRequestSchema, renderChatPrompt } from '@dllm/contracts';
import { fromZodError } from '../http/api-error';
import { wireName } from '../jobs/generation.service';
import { engineOptions } from './options';

describe('OpenAI request -> engine options', () => {
  it('maps OpenAI fields and dLLM extras to DecodeOptions keys', () => {
    const body = completionRequestSchema.parse({
      model: 'm',
      prompt: 'p',
      max_tokens: 32,
      temperature: 0,
      top_p: 0.9,
      seed: 7,
      stop: 'END',
      policy: 'fast-dllm-v2',
      block_size: 8,
      sub_block_size: 4,
      threshold: 0.9,
      top_k: 5,
      stop_token_ids: [2],
    });
    expect(engineOptions(body)).toEqual({
      maxNewTokens: 32,
      temperature: 0,
      topP: 0.9,
      seed: 7,
      stop: ['END'],
      policy: 'fast-dllm-v2',
      blockSize: 8,
      subBlockSize: 4,
      threshold: 0.9,
      topK: 5,
      stopTokenIds: [2],
    });
  });

  it('prefers max_completion_tokens over max_tokens in chat', () => {
    const body = chatCompletionRequestSchema.parse({ model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 5, max_completion_tokens: 9 });
    expect(engineOptions(body).maxNewTokens).toBe(9);
  });

  it('rejects unknown fields and unsupported OpenAI features with the field named', () => {
    const r = completionRequestSchema.safeParse({ model: 'm', prompt: 'p', blocksize: 8 });
    expect(r.success).toBe(false);
    expect(fromZodError(r.error!).message).toMatch(/blocksize/);
    const n = completionRequestSchema.safeParse({ model: 'm', prompt: 'p', n: 2 });
    expect(fromZodError(n.error!).param).toBe('n');
    expect(completionRequestSchema.safeParse({ model: 'm', prompt: ['a', 'b'] }).success).toBe(false);
  });

  it('names engine option errors by their wire field', () => {
    expect(wireName('options.blockSize')).toBe('block_size');
    expect(wireName('options.maxNewTokens')).toBe('max_tokens');
    expect(wireName('prompt')).toBe('prompt');
  });

  it('renders chat messages; a lone user message is passed unchanged', () => {
    expect(renderChatPrompt([{ role: 'user', content: '12+5=' }])).toBe('12+5=');
    expect(
      renderChatPrompt([
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'hi' }] },
      ]),
    ).toBe('System: Be brief.\nUser: hi\nAssistant:');
  });
});
