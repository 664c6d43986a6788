import { z } from 'zod';
import { dllmStatsSchema, samplingShape, usageSchema } from './common';

const MAX_PROMPT_CHARS = 1_000_000;

export const completionRequestSchema = z
  .strictObject({
    ...samplingShape,
    prompt: z
      .union([z.string().max(MAX_PROMPT_CHARS), z.array(z.string().max(MAX_PROMPT_CHARS)).length(1)])
      .describe('One prompt (a string, or an array holding exactly one string)'),
    echo: z.literal(false).nullish().describe('Not supported'),
    logprobs: z.null().optional().describe('Not supported'),
    suffix: z.null().optional().describe('Not supported'),
    best_of: z.literal(1).nullish(),
  })
  .meta({ id: 'CreateCompletionRequest' });
export type CompletionRequest = z.infer<typeof completionRequestSchema>;

const textPartSchema = z.strictObject({ type: z.literal('text'), text: z.string() });
export const chatMessageSchema = z.strictObject({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(textPartSchema).min(1)]),
  name: z.string().optional(),
});
export type ChatMessage = z.infer<typeof chatMessageSchema>;

export const chatCompletionRequestSchema = z
  .strictObject({
    ...samplingShape,
    messages: z.array(chatMessageSchema).min(1).max(256),
    max_completion_tokens: z.number().int().positive().nullish(),
    logprobs: z.literal(false).nullish().describe('Not supported'),
  })
  .meta({ id: 'CreateChatCompletionRequest' });
export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>;

export const completionResponseSchema = z
  .object({
    id: z.string(),
    object: z.literal('text_completion'),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(z.object({ index: z.number().int(), text: z.string(), finish_reason: z.enum(['stop', 'length']).nullable(), logprobs: z.null() })),
    usage: usageSchema.optional(),
    dllm: dllmStatsSchema.optional(),
  })
  .meta({ id: 'Completion' });
export type CompletionResponse = z.infer<typeof completionResponseSchema>;

export const chatCompletionResponseSchema = z
  .object({
    id: z.string(),
    object: z.literal('chat.completion'),
    created: z.number().int(),
    model: z.string(),
    choices: z.array(
      z.object({
        index: z.number().int(),
        message: z.object({ role: z.literal('assistant'), content: z.string(), refusal: z.null() }),
        finish_reason: z.enum(['stop', 'length']),
        logprobs: z.null(),
      }),
    ),
    usage: usageSchema,
    dllm: dllmStatsSchema,
  })
  .meta({ id: 'ChatCompletion' });
export type ChatCompletionResponse = z.infer<typeof chatCompletionResponseSchema>;

export const modelListSchema = z
  .object({
    object: z.literal('list'),
    data: z.array(
      z.object({
        id: z.string(),
        object: z.literal('model'),
        created: z.number().int(),
        owned_by: z.string(),
        dllm: z.object({ queue: z.string(), dir: z.string().optional() }).optional(),
      }),
    ),
  })
  .meta({ id: 'ModelList' });

/**
 * Renders chat messages into one prompt for a model without a chat template: system/developer text
 * first, then the turns. A lone user message is passed as-is so task prompts keep their exact form.
 */
export function renderChatPrompt(messages: ChatMessage[]): string {
  const text = (m: ChatMessage) => (typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''));
  if (messages.length === 1 && messages[0].role === 'user') return text(messages[0]);
  const lines = messages.map((m) => {
    const role = m.role === 'developer' ? 'system' : m.role;
    return `${role[0].toUpperCase()}${role.slice(1)}: ${text(m)}`;
  });
  return `${lines.join('\n')}\nAssistant:`;
}
