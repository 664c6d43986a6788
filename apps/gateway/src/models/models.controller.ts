// Model registry (policy versions for RL weight sync): POST /v1/models/:name/versions registers a
// new model directory (on the volume the workers share) as the next version, either by path (JSON
// {dir}) or by upload (multipart/form-data with parts dllm.json, model.onnx, tokenizer.json and
// optionally model.onnx.data, written under STORAGE_DIR/models/<name>/<version>/); every worker
// serving that model hot-swaps to it (pub/sub), in-flight sequences finish on the old weights.
import { Body, Controller, Get, HttpCode, Inject, Param, Post, Req } from '@nestjs/common';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Scopes, type AuthedRequest } from '../auth/auth.guard';
import { readMultipart } from '../batches/multipart';
import { Accepts, JSON_TYPE, MULTIPART_TYPE } from '../http/body-policy';
import { ApiBearerAuth, ApiBody, ApiTags } from '@nestjs/swagger';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { defaultModelRoots } from '@dllm/config';
import { loadModelDir, ModelDirError } from '@dllm/model';
import { PolicyRegistry, PolicyVersionConflict } from '@dllm/rl';
import { pipeToFile } from '@dllm/storage';
import { ApiError } from '../http/api-error';
import { parseBody } from '../http/zod';
import { GenerationService } from '../jobs/generation.service';
import { ModelFactsService } from '../jobs/model-facts';
import { jsonSchema } from '../openapi/zod-openapi';
import type { GatewaySettings } from '../settings';
import { REDIS, SETTINGS } from '../tokens';

export const registerVersionSchema = z
  .strictObject({
    /** A model directory (dllm.json, model.onnx, tokenizer.json) readable by the gateway and the workers. */
    dir: z.string().min(1).max(4096),
    /** Must equal the manifest's version when given. */
    version: z.string().min(1).max(128).optional(),
  })
  .meta({ id: 'RegisterModelVersion' });

@ApiTags('models')
@ApiBearerAuth()
@Controller('v1/models')
export class ModelsController {
  private readonly registry: PolicyRegistry;

  constructor(
    @Inject(REDIS) redis: Redis,
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
    private readonly gen: GenerationService,
    private readonly facts: ModelFactsService,
  ) {
    this.registry = new PolicyRegistry(redis, settings.queuePrefix);
  }

  @Post(':name/versions')
  @Scopes('models:write')
  @HttpCode(201)
  @Accepts(JSON_TYPE, MULTIPART_TYPE)
  @ApiBody({ schema: jsonSchema(registerVersionSchema) })
  async register(@Param('name') name: string, @Body() raw: unknown, @Req() req: AuthedRequest) {
    this.gen.checkModel(name);
    const upload = req.isMultipart();
    const body = upload ? { dir: await this.saveUpload(name, req) } : parseBody(registerVersionSchema, raw);
    try {
      return await this.registerDir(name, body);
    } catch (e) {
      if (upload) fs.rmSync(body.dir, { recursive: true, force: true }); // a rejected upload leaves nothing behind
      throw e;
    }
  }

  /**
   * The model roots a version's directory must lie under (settings.modelRoots, else STORAGE_DIR/models
   * and the folder of each served model's directory), as absolute real paths.
   */
  private roots(): string[] {
    const configured = this.settings.modelRoots ?? defaultModelRoots(this.settings.storageDir, this.settings.models);
    return configured.map((r) => realOrResolved(r));
  }

  /**
   * 422 `dir_not_allowed` unless `dir` lies under a model root, checked on the path as written and
   * again after symbolic links are followed. The answer is the same whether or not the path exists,
   * so the route tells nothing about the server's file system outside the roots.
   */
  private confine(dir: string): void {
    const roots = this.roots();
    const inside = (p: string) => roots.some((r) => p === r || p.startsWith(r.endsWith(path.sep) ? r : r + path.sep));
    if (!path.isAbsolute(dir) || !inside(path.resolve(dir)) || !inside(realOrResolved(dir))) {
      throw new ApiError(
        422,
        'dir must be an absolute path of a model directory under one of the configured model roots (MODEL_ROOTS); upload the directory (multipart) otherwise.',
        'dir_not_allowed',
        'dir',
      );
    }
  }

  private async registerDir(name: string, body: { dir: string; version?: string }) {
    let manifest;
    let dir: string;
    this.confine(body.dir);
    try {
      const md = await loadModelDir(body.dir);
      manifest = md.manifest;
      dir = md.dir;
    } catch (e) {
      if (e instanceof ModelDirError) throw new ApiError(422, e.message, 'invalid_model_dir', 'dir');
      throw e;
    }
    if (manifest.name !== name) throw new ApiError(422, `The model directory is '${manifest.name}' (dllm.json name), not '${name}'.`, 'model_name_mismatch', 'dir');
    if (body.version !== undefined && body.version !== manifest.version) throw new ApiError(422, `version '${body.version}' does not match the manifest's version '${manifest.version}'.`, 'version_mismatch', 'version');
    try {
      const v = await this.registry.register(name, manifest.version, dir);
      // requests are judged against the new version from now on (other replicas follow the announcement)
      this.facts.refresh(name, v.seq, v.version, v.dir);
      return { object: 'model.version', model: name, version: v.version, seq: v.seq, dir: v.dir, created_at: Math.floor(v.createdAt / 1000) };
    } catch (e) {
      if (e instanceof PolicyVersionConflict) throw new ApiError(409, e.message, 'version_exists', 'version');
      if (e instanceof RangeError) throw new ApiError(422, e.message, 'invalid_value');
      throw e;
    }
  }

  /**
   * Streams an uploaded model directory into STORAGE_DIR/models/<name>/.upload-<random>/ part by part
   * (bounded memory; FILE_LIMIT_BYTES per file), then renames it to <version>/ (atomic) and returns it.
   */
  private async saveUpload(name: string, req: AuthedRequest): Promise<string> {
    const allowed = new Set(['dllm.json', 'model.onnx', 'model.onnx.data', 'tokenizer.json']);
    const root = path.resolve(this.settings.storageDir, 'models', name);
    const tmp = path.join(root, `.upload-${randomBytes(6).toString('hex')}`);
    fs.mkdirSync(tmp, { recursive: true });
    try {
      const seen = new Set<string>();
      await readMultipart(req, async (p) => {
        const n = p.filename || p.name;
        if (!allowed.has(n)) throw new ApiError(422, `Unexpected part '${n.slice(0, 64)}': upload dllm.json, model.onnx, tokenizer.json (and model.onnx.data).`, 'invalid_value', 'file');
        seen.add(n);
        await pipeToFile(path.join(tmp, n), p.stream);
      });
      for (const need of ['dllm.json', 'model.onnx', 'tokenizer.json']) if (!seen.has(need)) throw new ApiError(422, `Missing part '${need}'.`, 'missing_field', need);
      let version: string;
      try {
        version = String((JSON.parse(fs.readFileSync(path.join(tmp, 'dllm.json'), 'utf8')) as { version?: unknown }).version ?? '');
      } catch {
        throw new ApiError(422, 'dllm.json is not valid JSON.', 'invalid_model_dir', 'dllm.json');
      }
      try {
        PolicyRegistry.checkNames(name, version);
      } catch (e) {
        throw new ApiError(422, `dllm.json: ${(e as Error).message}`, 'invalid_model_dir', 'dllm.json');
      }
      const dir = path.join(root, version);
      if (fs.existsSync(dir)) throw new ApiError(409, `An upload of ${name} version '${version}' already exists; versions are immutable.`, 'version_exists', 'version');
      fs.renameSync(tmp, dir);
      return dir;
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /** Every version of a model; `dir` (a server path) only for keys that may register versions (models:write). */
  @Get(':name/versions')
  @Scopes()
  async list(@Param('name') name: string, @Req() req: AuthedRequest) {
    this.gen.checkModel(name);
    const all = await this.registry.list(name);
    const latest = await this.registry.latest(name);
    const writer = req.scopes?.has('models:write') ?? false;
    return {
      object: 'list',
      model: name,
      latest: latest?.version ?? null,
      data: all.map((v) => ({ version: v.version, seq: v.seq, ...(writer ? { dir: v.dir } : {}), created_at: Math.floor(v.createdAt / 1000) })),
    };
  }
}

/** The real path of `p` (symbolic links followed) when it exists, else `p` resolved. */
function realOrResolved(p: string): string {
  try {
    return fs.realpathSync(path.resolve(p));
  } catch {
    return path.resolve(p);
  }
}
