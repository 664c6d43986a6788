import { Controller, Delete, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiConsumes, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { fileObjectSchema, FILE_PURPOSES } from '@dllm/contracts';
import { Scopes, type AuthedRequest } from '../auth/auth.guard';
import { ApiError } from '../http/api-error';
import { checkId } from '../http/zod';
import { jsonSchema } from '../openapi/zod-openapi';
import { FileService, type StoredFile } from './file.service';
import { parseMultipart } from './multipart';

const publicFile = ({ owner: _owner, ...f }: StoredFile) => f;

@ApiTags('files')
@ApiBearerAuth()
@Scopes('batch')
@Controller('v1/files')
export class FilesController {
  constructor(private readonly files: FileService) {}

  /** multipart/form-data with `purpose=batch` and `file` (JSONL), as the openai client sends it. */
  @Post()
  @HttpCode(200)
  @ApiConsumes('multipart/form-data')
  @ApiOkResponse({ schema: jsonSchema(fileObjectSchema, 'output') })
  async upload(@Req() req: AuthedRequest) {
    const ct = req.headers['content-type'];
    if (!ct || !ct.toLowerCase().startsWith('multipart/form-data')) {
      throw new ApiError(415, 'Upload files as multipart/form-data with fields `purpose` and `file`.', 'unsupported_media_type');
    }
    if (!Buffer.isBuffer(req.body)) throw new ApiError(400, 'Empty upload.', 'invalid_multipart');
    const parts = parseMultipart(req.body, ct);
    const purpose = parts.find((p) => p.name === 'purpose')?.data.toString('utf8').trim();
    const file = parts.find((p) => p.name === 'file');
    if (!purpose) throw new ApiError(422, "Missing field 'purpose' (use 'batch').", 'missing_field', 'purpose');
    if (purpose !== 'batch') throw new ApiError(422, `Unsupported purpose '${purpose}'; this gateway accepts 'batch'.`, 'invalid_value', 'purpose');
    if (!file) throw new ApiError(422, "Missing file part 'file'.", 'missing_field', 'file');
    if (file.data.length === 0) throw new ApiError(422, 'The uploaded file is empty.', 'empty_file', 'file');
    const f = await this.files.create(req.owner, (file.filename || 'upload.jsonl').slice(0, 255), purpose, Buffer.from(file.data));
    return publicFile(f);
  }

  @Get()
  async list(@Req() req: AuthedRequest, @Query('purpose') purpose?: string) {
    if (purpose && !(FILE_PURPOSES as readonly string[]).includes(purpose)) {
      throw new ApiError(422, `Unknown purpose '${purpose}'.`, 'invalid_value', 'purpose');
    }
    const all = (await this.files.list(req.owner)).filter((f) => !purpose || f.purpose === purpose);
    return { object: 'list', data: all.map(publicFile), has_more: false };
  }

  @Get(':id')
  async get(@Param('id') id: string, @Req() req: AuthedRequest) {
    return publicFile(await this.files.get(req.owner, checkId(id, 'file')));
  }

  @Get(':id/content')
  async content(@Param('id') id: string, @Req() req: AuthedRequest, @Res() reply: FastifyReply) {
    const f = await this.files.get(req.owner, checkId(id, 'file'));
    // Streamed from the file store: output files of large batches never sit in memory whole.
    const { size, stream } = await this.files.open(f);
    return reply.header('content-type', 'application/jsonl; charset=utf-8').header('content-length', String(size)).send(stream);
  }

  @Delete(':id')
  async remove(@Param('id') id: string, @Req() req: AuthedRequest) {
    await this.files.delete(req.owner, checkId(id, 'file'));
    return { id, object: 'file', deleted: true };
  }
}
