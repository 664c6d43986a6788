import { Body, Controller, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { rolloutRequestSchema } from '@dllm/contracts';
import { CLAIM_IDLE_MS_RANGE, DEFAULT_CLAIM_IDLE_MS } from '@dllm/rl';
import { Scopes, type AuthedRequest } from '../auth/auth.guard';
import { ApiError } from '../http/api-error';
import { parseBody } from '../http/zod';
import { jsonSchema } from '../openapi/zod-openapi';
import { RolloutService } from './rollout.service';

/** RL rollouts: submit a batch of prompts x G samples, poll it, download or stream its trajectories. */
@ApiTags('rollouts')
@ApiBearerAuth()
@Scopes('rollout')
@Controller('v1/rollouts')
export class RolloutController {
  constructor(private readonly rollouts: RolloutService) {}

  @Post()
  @HttpCode(202)
  @ApiBody({ schema: jsonSchema(rolloutRequestSchema) })
  async create(@Body() raw: unknown, @Req() req: AuthedRequest) {
    parseBody(rolloutRequestSchema, raw); // 400 for a non-object body, 422 with every reason
    const body = this.rollouts.parse(raw);
    const { id, targetGroups } = await this.rollouts.submit(req.owner, body);
    return {
      id,
      object: 'rollout',
      status: 'queued',
      model: body.model,
      prompts: body.prompts.length,
      group_size: body.groupSize,
      target_groups: targetGroups,
    };
  }

  @Get(':id')
  async get(@Param('id') id: string, @Req() req: AuthedRequest) {
    return this.rollouts.view(req.owner, id);
  }

  /**
   * Cancels a rollout: groups not started are skipped, running ones stop at their next block
   * boundary; finished trajectories are kept, the parent still writes the JSONL and ends the stream.
   * Returns the rollout (status `cancelling`, then `cancelled`); a finished rollout is returned unchanged.
   */
  @Post(':id/cancel')
  @HttpCode(200)
  async cancel(@Param('id') id: string, @Req() req: AuthedRequest) {
    return this.rollouts.cancel(req.owner, id);
  }

  /** Every trajectory record as JSONL (one record per line), once the rollout completed. */
  @Get(':id/trajectories')
  async trajectories(@Param('id') id: string, @Req() req: AuthedRequest, @Res() reply: FastifyReply) {
    const buf = await this.rollouts.jsonl(req.owner, id);
    await reply.header('content-type', 'application/x-ndjson').header('content-disposition', `attachment; filename="${id}.jsonl"`).send(buf);
  }

  /**
   * The learner's cursor stream: ?group=<consumer group>&cursor=<cursor of the previous page>&count=N
   * &consumer=<reader>&claim_idle_ms=<ms>. Passing a cursor acknowledges that page; each record
   * reaches a consumer group once. Records another reader of the group left unacknowledged for
   * claim_idle_ms (default 60000) are handed to the reader asking (XAUTOCLAIM semantics).
   */
  @Get(':id/stream')
  @ApiQuery({ name: 'group', required: true, description: 'consumer group (1-64 letters, digits, . _ -): each group reads every record once' })
  @ApiQuery({ name: 'cursor', required: false, description: "the previous page's cursor: acknowledges that page" })
  @ApiQuery({ name: 'count', required: false, description: 'records per page, 1-1000 (default 100)' })
  @ApiQuery({ name: 'consumer', required: false, description: "reader name inside the group (default 'learner')" })
  @ApiQuery({
    name: 'claim_idle_ms',
    required: false,
    description: `take over records another reader of the group left unacknowledged this long (ms, ${CLAIM_IDLE_MS_RANGE.min}-${CLAIM_IDLE_MS_RANGE.max}, default ${DEFAULT_CLAIM_IDLE_MS})`,
  })
  async stream(@Param('id') id: string, @Query() q: Record<string, string | undefined>, @Req() req: AuthedRequest) {
    if (!q.group) throw new ApiError(400, 'Query parameter group (the consumer group name) is required.', 'missing_group', 'group');
    const count = q.count === undefined ? 100 : Number(q.count);
    const claimIdleMs = q.claim_idle_ms === undefined ? undefined : Number(q.claim_idle_ms);
    const page = await this.rollouts.page(req.owner, id, q.group, q.cursor ? q.cursor : null, count, { consumer: q.consumer, claimIdleMs });
    return { object: 'rollout.page', rollout: id, group: q.group, ...page };
  }
}
