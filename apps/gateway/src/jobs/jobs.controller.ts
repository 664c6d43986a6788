import { Body, Controller, Get, HttpCode, Inject, Param, Post, Req, Res } from '@nestjs/common';
import { Job } from 'bullmq';
import { ApiBearerAuth, ApiBody, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { Scopes, type AuthedRequest } from '../auth/auth.guard';
import { ApiError } from '../http/api-error';
import { toApiError } from '../http/error.filter';
import { openSse, SSE_HEARTBEAT_MS } from '../http/sse';
import type { GatewaySettings } from '../settings';
import { SETTINGS } from '../tokens';
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
  constructor(
    private readonly gen: GenerationService,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
  ) {}

  @Post()
  @HttpCode(202)
  @ApiBody({ schema: jsonSchema(createJobRequestSchema) })
  async create(@Body() raw: unknown, @Req() req: AuthedRequest) {
    const body = parseBody(createJobRequestSchema, raw);
    const { jobId } = await this.gen.submit({
      owner: req.owner,
      model: body.model,
      prompt: body.prompt,
      options: body.options ?? {},
      endpoint: 'native',
      stream: false,
    });
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
    const found = await this.gen.find(req.owner, checkId(id, 'job'));
    const outcome = found.cancelled ? 'finished' : await this.gen.cancel(found.model, id);
    return { id, object: 'job.cancel', outcome };
  }

  /**
   * SSE: `progress` events per committed block, then exactly one final event and the end of the
   * stream: `completed` (the result; a job cancelled while running completes with finish_reason
   * `cancelled`), `failed` ({id, reason}), `cancelled` ({id}: cancelled while queued) or `lost`
   * ({id, message}: the job left its queue without an outcome, e.g. trimmed or Redis lost it).
   * `: ping` comment lines come every heartbeat; the job is also re-read then, so an event missed
   * across a Redis reconnect still ends the stream.
   */
  @Get(':id/events')
  async events(@Param('id') id: string, @Req() req: AuthedRequest, @Res() reply: FastifyReply) {
    const found = await this.gen.find(req.owner, checkId(id, 'job'));
    const heartbeatMs = this.settings.sseHeartbeatMs ?? SSE_HEARTBEAT_MS;
    if (found.cancelled) {
      const sse = openSse(reply, { heartbeatMs });
      sse.event('cancelled', { id, status: 'cancelled' });
      return sse.end();
    }
    const { model } = found;
    const w = await this.gen.watcher(model);
    const sse = openSse(reply, { heartbeatMs });
    await new Promise<void>((resolve) => {
      let off = () => {};
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        finished = true;
        off();
        if (timer) clearInterval(timer);
        resolve();
      };
      const final = (name: string, data: unknown) => {
        if (finished) return;
        sse.event(name, data);
        done();
      };
      const completed = (rv: unknown) => {
        this.gen.readResult(id, rv).then(
          (r) => final('completed', r),
          (e: Error) => final('error', toApiError(e).body()),
        );
      };
      const removed = () => {
        void this.gen
          .gone(id)
          .then((e) => (e.code === 'job_cancelled' ? final('cancelled', { id, status: 'cancelled' }) : final('lost', { id, message: e.message })));
      };
      // Where the job is now: catches outcomes from before we subscribed, and events lost in a reconnect.
      const check = async () => {
        if (finished) return;
        const job = await Job.fromId(this.gen.queue(model), id);
        if (!job) return removed();
        const state = await job.getState();
        if (state === 'completed') completed(job.returnvalue);
        else if (state === 'failed' && job.attemptsMade >= (job.opts.attempts ?? 1)) final('failed', { id, reason: job.failedReason });
      };
      off = w.listen(id, {
        progress: (d) => {
          const p = parseProgress(d);
          if (p && !finished) sse.event('progress', p);
        },
        completed,
        failed: (reason) => final('failed', { id, reason }),
        removed,
      });
      sse.signal.addEventListener('abort', done, { once: true });
      void check().catch(() => undefined);
      timer = setInterval(() => void check().catch(() => undefined), Math.max(100, Math.min(heartbeatMs || 5000, 5000)));
      timer.unref();
    });
    sse.end();
  }
}
