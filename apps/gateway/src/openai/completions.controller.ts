import { randomUUID } from 'node:crypto';
import { Body, Controller, Get, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import {
  chatCompletionRequestSchema,
  chatCompletionResponseSchema,
  completionRequestSchema,
  completionResponseSchema,
  modelListSchema,
  renderChatPrompt,
} from '@dllm/contracts';
import { Scopes, type AuthedRequest } from '../auth/auth.guard';
import { toApiError } from '../http/error.filter';
import { openSse } from '../http/sse';
import { parseBody } from '../http/zod';
import { jsonSchema } from '../openapi/zod-openapi';
import { GenerationService, type Endpoint } from '../jobs/generation.service';
import { SETTINGS } from '../tokens';
import type { GatewaySettings } from '../settings';
import { engineOptions } from './options';
import { chatBody, completionBody, dllmStats, openAiFinish, usage } from './render';

const now = () => Math.floor(Date.now() / 1000);

@ApiTags('openai')
@ApiBearerAuth()
@Controller('v1')
export class CompletionsController {
  constructor(
    private readonly gen: GenerationService,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
  ) {}

  @Get('models')
  @Scopes()
  @ApiOkResponse({ schema: jsonSchema(modelListSchema) })
  listModels() {
    return {
      object: 'list' as const,
      data: this.gen.models().map((m) => ({ id: m.name, object: 'model' as const, created: 0, owned_by: 'dllm-farm', dllm: { queue: m.queue } })),
    };
  }

  @Post('completions')
  @Scopes('generate')
  @HttpCode(200)
  @ApiBody({ schema: jsonSchema(completionRequestSchema) })
  @ApiOkResponse({
    schema: jsonSchema(completionResponseSchema),
    description: 'JSON, or an SSE stream of chunks (one per committed block) when stream is true',
  })
  async completions(@Body() raw: unknown, @Req() req: AuthedRequest, @Res() reply: FastifyReply) {
    const body = parseBody(completionRequestSchema, raw);
    const prompt = Array.isArray(body.prompt) ? body.prompt[0] : body.prompt;
    return this.generate(req.owner, 'completions', body.model, prompt, body as Record<string, unknown>, !!body.stream, reply);
  }

  @Post('chat/completions')
  @Scopes('generate')
  @HttpCode(200)
  @ApiBody({ schema: jsonSchema(chatCompletionRequestSchema) })
  @ApiOkResponse({
    schema: jsonSchema(chatCompletionResponseSchema),
    description: 'JSON, or an SSE stream of chunks (one per committed block) when stream is true',
  })
  async chat(@Body() raw: unknown, @Req() req: AuthedRequest, @Res() reply: FastifyReply) {
    const body = parseBody(chatCompletionRequestSchema, raw);
    return this.generate(req.owner, 'chat.completions', body.model, renderChatPrompt(body.messages), body as Record<string, unknown>, !!body.stream, reply);
  }

  private async generate(
    owner: string,
    endpoint: Endpoint,
    model: string,
    prompt: string,
    body: Record<string, unknown>,
    stream: boolean,
    reply: FastifyReply,
  ) {
    const input = { owner, model, prompt, options: engineOptions(body), endpoint, stream };
    if (!stream) {
      const { jobId, result } = await this.gen.run(input, { timeoutMs: this.settings.requestTimeoutMs });
      return reply.send(endpoint === 'completions' ? completionBody(jobId, model, result) : chatBody(jobId, model, result));
    }
    this.gen.payload(input); // 4xx before the stream opens
    const sse = openSse(reply, { heartbeatMs: this.settings.sseHeartbeatMs });
    const chat = endpoint === 'chat.completions';
    const created = now();
    // OpenAI's stream_options.include_usage: only when true, every chunk carries `usage: null` and one
    // extra chunk with `choices: []` and the usage comes before [DONE]; otherwise no usage field at all.
    const includeUsage = (body.stream_options as { include_usage?: boolean } | null | undefined)?.include_usage === true;
    const usageField = includeUsage ? { usage: null } : {};
    let id = '';
    let sent = '';
    const head = () =>
      chat ? { id: `chatcmpl-${id}`, object: 'chat.completion.chunk', created, model } : { id: `cmpl-${id}`, object: 'text_completion', created, model };
    const chunk = (text: string | null, finish: string | null, extra: Record<string, unknown> = {}) =>
      chat
        ? {
            ...head(),
            choices: [
              {
                index: 0,
                delta: text === null ? {} : sent === '' && text !== '' ? { role: 'assistant', content: text } : { content: text },
                finish_reason: finish,
                logprobs: null,
              },
            ],
            ...usageField,
            ...extra,
          }
        : { ...head(), choices: [{ index: 0, text: text ?? '', finish_reason: finish, logprobs: null }], ...usageField, ...extra };
    const jobId = `gen-${randomUUID()}`;
    id = jobId;
    try {
      const { result } = await this.gen.run(
        { ...input, jobId },
        {
          signal: sse.signal,
          timeoutMs: this.settings.requestTimeoutMs,
          onProgress: (p) => {
            if (!p.text) return;
            sse.data(chunk(p.text, null));
            sent += p.text;
          },
        },
      );
      const rest = result.text.startsWith(sent) ? result.text.slice(sent.length) : '';
      if (rest) {
        sse.data(chunk(rest, null));
        sent += rest;
      }
      sse.data(chunk(chat ? null : '', openAiFinish(result), { dllm: dllmStats(jobId, result) }));
      if (includeUsage) sse.data({ ...head(), choices: [], usage: usage(result) });
      sse.data('[DONE]');
    } catch (e) {
      sse.data(toApiError(e).body());
    } finally {
      sse.end();
    }
    return undefined;
  }
}
