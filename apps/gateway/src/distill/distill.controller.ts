import { Body, Controller, Get, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { distillRequestSchema } from '@dllm/contracts';
import { Scopes, type AuthedRequest } from '../auth/auth.guard';
import { parseBody } from '../http/zod';
import { jsonSchema } from '../openapi/zod-openapi';
import { DistillService } from './distill.service';

/** Self-distillation datasets (dParallel): the teacher decodes questions safely, the job writes a training set. */
@ApiTags('distill')
@ApiBearerAuth()
@Scopes('distill')
@Controller('v1/distill')
export class DistillController {
  constructor(private readonly distill: DistillService) {}

  @Post()
  @HttpCode(202)
  @ApiBody({ schema: jsonSchema(distillRequestSchema) })
  async create(@Body() raw: unknown, @Req() req: AuthedRequest) {
    parseBody(distillRequestSchema, raw);
    const body = this.distill.parse(raw);
    const { id, total } = await this.distill.submit(req.owner, body);
    return { id, object: 'distillation', status: 'queued', model: body.model, total };
  }

  @Get(':id')
  async get(@Param('id') id: string, @Req() req: AuthedRequest) {
    return this.distill.view(req.owner, id);
  }

  /**
   * Cancels a distillation: a queued one is removed without running; a running one stops at its
   * next chunk (no dataset is written). Returns the distillation (status `cancelled`, or `cancelling`
   * until the running job stopped); idempotent; a finished one is returned unchanged.
   */
  @Post(':id/cancel')
  @HttpCode(200)
  async cancel(@Param('id') id: string, @Req() req: AuthedRequest) {
    return this.distill.cancel(req.owner, id);
  }

  /** A dataset file: <family>-train.jsonl, tokenizer.json or distill.json. */
  @Get(':id/files/:name')
  async file(@Param('id') id: string, @Param('name') name: string, @Req() req: AuthedRequest, @Res() reply: FastifyReply) {
    const f = await this.distill.file(req.owner, id, name);
    const type = name.endsWith('.jsonl') ? 'application/x-ndjson' : 'application/json';
    await reply.header('content-type', type).send(f.stream ?? f.buf);
  }
}
