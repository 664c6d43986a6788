// The model facts the gateway's request resolver needs (kind, block size, positions, vocabulary,
// tokenizer), read from each MODELS entry's directory and, after a model-version swap, from the
// registered version's directory: dllm.json and tokenizer.json only. No ONNX file is opened and
// onnxruntime is never loaded here (the worker owns the graph).
import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { modelDecodeDefaults, unknownModelFacts, type ModelFacts } from '@dllm/contracts';
import { MANIFEST_FILE, TOKENIZER_FILE, Tokenizer, parseManifest } from '@dllm/model';
import { createRedis } from '@dllm/queue';
import { parseAnnouncement, PolicyRegistry } from '@dllm/rl';
import type { GatewaySettings } from '../settings';
import { REDIS, SETTINGS } from '../tokens';

/**
 * Reads a model directory's manifest facts and tokenizer (synchronous; a few ms for small
 * tokenizers). Throws Error naming the file when dllm.json or tokenizer.json is missing or invalid
 * (including decode_defaults out of range).
 */
export function readModelFacts(dir: string): ModelFacts {
  const file = path.join(dir, MANIFEST_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  const m = parseManifest(raw, file);
  const tokenizer = Tokenizer.fromFile(path.join(dir, TOKENIZER_FILE));
  return {
    name: m.name,
    kind: m.kind,
    blockSize: m.block_size,
    maxPositions: m.architecture.max_position_embeddings,
    vocabSize: m.vocab_size,
    tokenizer,
    decodeDefaults: modelDecodeDefaults(m.decode_defaults, m.kind, file),
  };
}

/**
 * Facts per served model, so the gateway judges requests against the version the workers serve:
 * read from each MODELS entry's directory at startup, then from the policy-version registry
 * (@dllm/rl PolicyRegistry): its `latest` version of each model once Redis answers (and again after
 * every reconnection: announcements published meanwhile are lost), every announcement on its
 * channel (registrations through any gateway replica), and `refresh()` right after a registration
 * through this gateway. Sequence numbers only go up, as in the worker's weight sync. A version whose
 * directory this gateway cannot read keeps the previous facts (logged); the worker's resolver run
 * decides then. A model without a readable directory gets unknownModelFacts.
 */
@Injectable()
export class ModelFactsService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('ModelFacts');
  private readonly facts = new Map<string, ModelFacts>();
  /** Registry sequence number of the version whose facts are held (0: the MODELS directory). */
  private readonly seqs = new Map<string, number>();
  private readonly registry: PolicyRegistry;
  private sub: Redis | null = null;

  constructor(
    @Inject(SETTINGS) private readonly settings: GatewaySettings,
    @Inject(REDIS) redis: Redis,
  ) {
    this.registry = new PolicyRegistry(redis, settings.queuePrefix);
  }

  onModuleInit(): void {
    for (const m of this.settings.models) this.load(m.name);
    // in the background: a gateway starts (and reports readiness) whether or not Redis answers yet
    this.sub = createRedis(this.settings.redisUrl, 'gateway-models', { connectionName: `dllm-gateway-models:${this.settings.queuePrefix}` }, (l) =>
      this.logger.warn(l),
    );
    this.sub.on('message', (channel: string, message: string) => {
      const a = channel === this.registry.channel ? parseAnnouncement(message) : null;
      if (a) this.apply(a.name, a.seq, a.version, a.dir);
    });
    // the first 'ready' and every reconnection: subscribe (a no-op when ioredis re-subscribed), then read `latest`
    this.sub.on('ready', () => {
      void this.sub
        ?.subscribe(this.registry.channel)
        .then(() => this.syncLatest())
        .catch((e: Error) => this.logger.warn(`cannot follow model versions: ${e.message}`));
    });
  }

  /** Closes the subscriber connection (never waits for an absent Redis). */
  onModuleDestroy(): void {
    this.sub?.disconnect();
  }

  /** The facts of `model` (a served model name), with `name` set to the served name. */
  get(model: string): ModelFacts {
    return this.facts.get(model) ?? this.load(model);
  }

  /**
   * Takes the facts of `model`'s registered version `version` (seq `seq`, directory `dir`) when it
   * is newer than the held one. Called after a registration through this gateway, so the next
   * request is judged against it without waiting for the announcement.
   */
  refresh(model: string, seq: number, version: string, dir: string): void {
    this.apply(model, seq, version, dir);
  }

  /** Reads the registry's latest version of every served model. */
  private async syncLatest(): Promise<void> {
    for (const m of this.settings.models) {
      const v = await this.registry.latest(m.name);
      if (v) this.apply(m.name, v.seq, v.version, v.dir);
    }
  }

  private apply(model: string, seq: number, version: string, dir: string): void {
    if (!this.settings.models.some((m) => m.name === model)) return;
    if (seq <= (this.seqs.get(model) ?? 0)) return;
    try {
      this.facts.set(model, { ...readModelFacts(dir), name: model });
      this.seqs.set(model, seq);
      this.logger.log(`model ${model}: requests are now checked against version ${version} (#${seq})`);
    } catch (e) {
      this.logger.warn(
        `model ${model}: cannot read version ${version} (#${seq}) (${(e as Error).message}); requests are checked against the facts held so far, the worker decides the rest`,
      );
    }
  }

  private load(model: string): ModelFacts {
    const dir = this.settings.models.find((m) => m.name === model)?.dir;
    let facts = unknownModelFacts(model);
    if (dir) {
      try {
        facts = { ...readModelFacts(dir), name: model };
      } catch (e) {
        this.logger.warn(
          `model ${model}: cannot read its facts from ${dir} (${(e as Error).message}); requests are checked without them, the worker decides the rest`,
        );
      }
    }
    this.facts.set(model, facts);
    return facts;
  }
}
