import { Controller, Delete, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { fileObjectSchema, FILE_PURPOSES } from '@dllm/contracts';
import { Scopes, type AuthedRequest } from '../auth/auth.guard';
import { ApiError } from '../http/api-error';
import { Accepts, MULTIPART_TYPE } from '../http/body-policy';
import { checkId } from '../http/zod';
import { jsonSchema } from '../openapi/zod-openapi';
import { FileService, type StoredFile } from './file.service';
import { discard, readMultipart } from './multipart';

const publicFile = ({ owner: _owner, ...f }: StoredFile) => f;

@ApiTags('files')
@ApiBearerAuth()
@Scopes('batch')
@Controller('v1/files')
export class FilesController {
  constructor(private readonly files: FileService) {}

  /**
   * multipart/form-data with `purpose=batch` and `file` (JSONL), as the openai client sends it. The
   * file streams into the file store as it arrives (bounded memory, FILE_LIMIT_BYTES per file).
   */
  @Post()
  @HttpCode(200)
  @Accepts(MULTIPART_TYPE)
  @ApiOkResponse({ schema: jsonSchema(fileObjectSchema, 'output') })
  async upload(@Req() req: AuthedRequest) {
    let stored: { id: string; filename: string; bytes: number } | undefined;
    const dropStored = () => (stored ? this.files.discard(stored.id).catch(() => undefined) : undefined);
    let fields: Map<string, string>;
    try {
      fields = await readMultipart(req, async (part) => {
        if (part.name !== 'file' || stored) return discard(part.stream);
        const id = this.files.newId();
        const w = this.files.writer(id);
        try {
          for await (const chunk of part.stream) await w.write(chunk as Buffer);
          stored = { id, filename: (part.filename || 'upload.jsonl').slice(0, 255), bytes: await w.end() };
        } catch (e) {
          await w.abort(e as Error);
          throw e;
        }
      });
    } catch (e) {
      await dropStored();
      throw e;
    }
    const purpose = fields.get('purpose')?.trim();
    const refuse = async (err: ApiError) => {
      await dropStored();
      return err;
    };
    if (!purpose) throw await refuse(new ApiError(422, "Missing field 'purpose' (use 'batch').", 'missing_field', 'purpose'));
    if (purpose !== 'batch') {
      throw await refuse(new ApiError(422, `Unsupported purpose '${purpose}'; this gateway accepts 'batch'.`, 'invalid_value', 'purpose'));
    }
    if (!stored) throw new ApiError(422, "Missing file part 'file'.", 'missing_field', 'file');
    if (stored.bytes === 0) throw await refuse(new ApiError(422, 'The uploaded file is empty.', 'empty_file', 'file'));
    return publicFile(await this.files.register(req.owner, stored.id, stored.filename, purpose, stored.bytes));
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
