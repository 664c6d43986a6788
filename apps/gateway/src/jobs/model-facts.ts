// The model facts the gateway's request resolver needs (kind, block size, positions, vocabulary,
// tokenizer), read from each MODELS entry's directory: dllm.json and tokenizer.json only. No ONNX
// file is opened and onnxruntime is never loaded here (the worker owns the graph).
import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unknownModelFacts, type ModelFacts } from '@dllm/contracts';
import { MANIFEST_FILE, TOKENIZER_FILE, Tokenizer, parseManifest } from '@dllm/model';
import type { GatewaySettings } from '../settings';
import { SETTINGS } from '../tokens';

/**
 * Reads a model directory's manifest facts and tokenizer (synchronous; a few ms for small
 * tokenizers). Throws Error naming the file when dllm.json or tokenizer.json is missing or invalid.
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
  };
}

/** Facts per served model, loaded once at startup; a model without a readable directory gets unknownModelFacts. */
@Injectable()
export class ModelFactsService implements OnModuleInit {
  private readonly logger = new Logger('ModelFacts');
  private readonly facts = new Map<string, ModelFacts>();

  constructor(@Inject(SETTINGS) private readonly settings: GatewaySettings) {}

  onModuleInit(): void {
    for (const m of this.settings.models) this.load(m.name);
  }

  /** The facts of `model` (a served model name), with `name` set to the served name. */
  get(model: string): ModelFacts {
    return this.facts.get(model) ?? this.load(model);
  }

  private load(model: string): ModelFacts {
    const dir = this.settings.models.find((m) => m.name === model)?.dir;
    let facts = unknownModelFacts(model);
    if (dir) {
      try {
        facts = { ...readModelFacts(dir), name: model };
      } catch (e) {
        this.logger.warn(`model ${model}: cannot read its facts from ${dir} (${(e as Error).message}); requests are checked without them, the worker decides the rest`);
      }
    }
    this.facts.set(model, facts);
    return facts;
  }
}
