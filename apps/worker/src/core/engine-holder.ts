// The engine behind one provider (the external system, swappable for hot model swap later). The
// model loads before any job is taken: queues start paused and resume once load() resolved.
import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { Engine } from '@dllm/engine';
import type { Config } from '@dllm/config';
import { CONFIG } from './tokens';

@Injectable()
export class EngineHolder implements OnApplicationShutdown {
  private readonly logger = new Logger('Engine');
  private current?: Engine;
  private loading?: Promise<Engine>;
  private readonly readyHooks: Array<(engine: Engine) => Promise<void>> = [];
  loadError?: Error;

  constructor(@Inject(CONFIG) private readonly config: Config) {}

  get ready(): boolean {
    return this.current !== undefined;
  }

  get engine(): Engine {
    if (!this.current) throw new Error('the engine has not loaded its model yet');
    return this.current;
  }

  /**
   * Runs `hook` after the model loaded and before load() resolves, i.e. before any queue takes a
   * job (e.g. the rollout module swaps to the registry's latest policy version). A failing hook is
   * logged; the worker still starts on the model it loaded.
   */
  beforeReady(hook: (engine: Engine) => Promise<void>): void {
    this.readyHooks.push(hook);
  }

  load(): Promise<Engine> {
    this.loading ??= (async () => {
      const w = this.config.worker;
      const t = Date.now();
      try {
        const engine = await Engine.create({
          modelDir: w.model.dir,
          executionProvider: w.executionProvider,
          intraOpThreads: w.intraOpThreads || undefined,
          kvPoolBytes: w.kvPoolBytes,
          maxBatchSize: w.maxBatchSize,
        });
        this.current = engine;
        this.logger.log(`model ${engine.model.name}@${engine.model.version} loaded from ${w.model.dir} in ${Date.now() - t} ms`);
        for (const hook of this.readyHooks) await hook(engine).catch((e: Error) => this.logger.error(`after loading the model: ${e.message}`));
        return engine;
      } catch (e) {
        this.loadError = e as Error;
        throw e;
      }
    })();
    return this.loading;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.current?.close();
    this.current = undefined;
  }
}
