import { Body, Controller, Get, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { Scopes, type AuthedRequest } from '../auth/auth.guard';
import { ApiError } from '../http/api-error';
import { toApiError } from '../http/error.filter';
import { openSse } from '../http/sse';
import { checkId, parseBody } from '../http/zod';
import { jsonSchema } from '../openapi/zod-openapi';
import { parseProgress } from './catalogue-bridge';
import { GenerationService } from './generation.service';

export const createJobRequestSchema = z
  .strictObject({
    model: z.string().min(1),
    prompt: z.string().max(1_000_000),
    options: z.record(z.string(), z.unknown()).optional().describe('Engine DecodeOptions (camelCase), validated by the engine schema'),
  })
  .meta({ id: 'CreateJobRequest' });

/** Native job API: one generation job, polled or followed over SSE (used by the RL tools too). */
@ApiTags('jobs')
@ApiBearerAuth()
@Scopes('generate')
@Controller('v1/jobs')
export class JobsController {
  constructor(private readonly gen: GenerationService) {}

  @Post()
  @HttpCode(202)
  @ApiBody({ schema: jsonSchema(createJobRequestSchema) })
  async create(@Body() raw: unknown, @Req() req: AuthedRequest) {
    const body = parseBody(createJobRequestSchema, raw);
    const { jobId } = await this.gen.submit({ owner: req.owner, model: body.model, prompt: body.prompt, options: body.options ?? {}, endpoint: 'native', stream: false });
    return { id: jobId, object: 'job', status: 'queued', model: body.model };
  }

  @Get(':id')
  async get(@Param('id') id: string, @Req() req: AuthedRequest) {
    return this.gen.view(req.owner, checkId(id, 'job'));
  }

  @Get(':id/result')
  async result(@Param('id') id: string, @Req() req: AuthedRequest) {
    const v = await this.gen.view(req.owner, checkId(id, 'job'));
    if (v.state === 'failed') throw new ApiError(409, `Job ${id} failed: ${v.failed_reason}`, 'job_failed');
    if (!v.result) throw new ApiError(409, `Job ${id} has no result yet (status ${v.status}).`, 'job_not_finished');
    return v.result;
  }

  @Post(':id/cancel')
  @HttpCode(200)
  async cancel(@Param('id') id: string, @Req() req: AuthedRequest) {
    const { model } = await this.gen.getJob(req.owner, checkId(id, 'job'));
    const outcome = await this.gen.cancel(model, id);
    return { id, object: 'job.cancel', outcome };
  }

  /** SSE: `progress` events per committed block, then `completed` (the result) or `failed`. */
  @Get(':id/events')
  async events(@Param('id') id: string, @Req() req: AuthedRequest, @Res() reply: FastifyReply) {
    const { job, model } = await this.gen.getJob(req.owner, checkId(id, 'job'));
    const w = await this.gen.watcher(model);
    const sse = openSse(reply);
    await new Promise<void>((resolve) => {
      let off = () => {};
      const done = () => {
        off();
        resolve();
      };
      off = w.listen(id, {
        progress: (d) => {
          const p = parseProgress(d);
          if (p) sse.event('progress', p);
        },
        completed: (rv) => {
          this.gen.readResult(id, rv).then(
            (r) => sse.event('completed', r),
            (e: Error) => sse.event('error', toApiError(e).body()),
          ).finally(done);
        },
        failed: (reason) => {
          sse.event('failed', { id, reason });
          done();
        },
      });
      sse.signal.addEventListener('abort', done, { once: true });
      // Already finished before we subscribed?
      void job.getState().then(async (state) => {
        if (state === 'completed') {
          const r = await this.gen.view(req.owner, id);
          sse.event('completed', r.result);
          done();
        } else if (state === 'failed') {
          sse.event('failed', { id, reason: job.failedReason });
          done();
        }
      });
    });
    sse.end();
  }
}
