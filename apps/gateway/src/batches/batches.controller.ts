import { Body, Controller, Get, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { batchSchema, createBatchRequestSchema } from '@dllm/contracts';
import { Scopes, type AuthedRequest } from '../auth/auth.guard';
import { ApiError } from '../http/api-error';
import { checkId, parseBody } from '../http/zod';
import { jsonSchema } from '../openapi/zod-openapi';
import { BatchService } from './batch.service';

@ApiTags('batches')
@ApiBearerAuth()
@Scopes('batch')
@Controller('v1/batches')
export class BatchesController {
  constructor(private readonly batches: BatchService) {}

  @Post()
  @HttpCode(200)
  @ApiBody({ schema: jsonSchema(createBatchRequestSchema) })
  @ApiOkResponse({ schema: jsonSchema(batchSchema, 'output') })
  async create(@Body() raw: unknown, @Req() req: AuthedRequest) {
    return this.batches.create(req.owner, parseBody(createBatchRequestSchema, raw));
  }

  @Get()
  async list(@Req() req: AuthedRequest, @Query('limit') limit?: string) {
    const n = limit === undefined ? 20 : Number(limit);
    if (!Number.isInteger(n) || n < 1 || n > 100) throw new ApiError(422, 'limit must be an integer from 1 to 100.', 'invalid_value', 'limit');
    const data = await this.batches.list(req.owner, n);
    return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: false };
  }

  @Get(':id')
  @ApiOkResponse({ schema: jsonSchema(batchSchema, 'output') })
  async get(@Param('id') id: string, @Req() req: AuthedRequest) {
    return this.batches.get(req.owner, checkId(id, 'batch'));
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOkResponse({ schema: jsonSchema(batchSchema, 'output') })
  async cancel(@Param('id') id: string, @Req() req: AuthedRequest) {
    return this.batches.cancel(req.owner, checkId(id, 'batch'));
  }
}
