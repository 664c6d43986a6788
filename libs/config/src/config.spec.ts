import * as fs from 'node:fs';
import * as path from 'node:path';
import { ALL_API_SCOPES, ConfigError, configMarkdown, ENV, loadConfig, parseApiKeys } from './index';

const DOC = path.join(__dirname, '../../../docs/CONFIG.md');

function problems(env: Record<string, string>): Record<string, string> {
  try {
    loadConfig(env, '/srv');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return Object.fromEntries((e as ConfigError).problems.map((p) => [p.name, p.message]));
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('has a default for every variable and shapes them', () => {
    const c = loadConfig({}, '/srv');
    expect(c.redis).toEqual({ url: 'redis://127.0.0.1:6379', queuePrefix: 'bull' });
    expect(c.models).toEqual([{ name: 'tiny-dllm', dir: '/srv/models/tiny-dllm' }]);
    expect(c.worker.model.name).toBe('tiny-dllm');
    expect(c.worker.concurrency).toBe(16);
    expect(c.worker.maxBatchSize).toBe(16);
    expect(c.gateway.apiKeys).toEqual([]);
    expect(c.storage.dir).toBe('/srv/var/storage');
    expect(c.retention.completed).toEqual({ count: 10000, ageSeconds: 3600 });
  });

  it('parses lists, booleans and integers', () => {
    const h = 'a'.repeat(64);
    const c = loadConfig(
      {
        MODELS: 'tiny-dllm=models/tiny-dllm, tiny-ar=/m/ar',
        WORKER_MODEL: 'tiny-ar',
        API_KEYS: `alice:${h},bob:${'B'.repeat(64)}`,
        BATCH_ALLOW_SHORT_WINDOWS: 'yes',
        WORKER_CONCURRENCY: ' 4 ',
        GATEWAY_PORT: '0',
      },
      '/srv',
    );
    expect(c.models.map((m) => m.dir)).toEqual(['/srv/models/tiny-dllm', '/m/ar']);
    expect(c.worker.model).toEqual({ name: 'tiny-ar', dir: '/m/ar' });
    expect(c.gateway.apiKeys).toEqual([
      { name: 'alice', sha256: h, scopes: ALL_API_SCOPES },
      { name: 'bob', sha256: 'b'.repeat(64), scopes: ALL_API_SCOPES },
    ]);
    expect(c.gateway.batch.allowShortWindows).toBe(true);
    expect(c.worker.concurrency).toBe(4);
    expect(c.worker.maxBatchSize).toBe(4);
    expect(c.gateway.port).toBe(0);
  });

  it('reports every bad value at once, one message each', () => {
    const p = problems({
      REDIS_URL: 'http://x',
      GATEWAY_PORT: '70000',
      WORKER_CONCURRENCY: 'many',
      BATCH_ALLOW_SHORT_WINDOWS: 'maybe',
      API_KEYS: 'alice:sk-raw-secret-key',
      MODELS: 'nodir,a:b=/x',
      QUEUE_PREFIX: 'a:b',
      WORKER_EXECUTION_PROVIDER: 'tpu',
    });
    expect(Object.keys(p).sort()).toEqual(
      ['API_KEYS', 'BATCH_ALLOW_SHORT_WINDOWS', 'GATEWAY_PORT', 'MODELS', 'QUEUE_PREFIX', 'REDIS_URL', 'WORKER_CONCURRENCY', 'WORKER_EXECUTION_PROVIDER'].sort(),
    );
    expect(p.REDIS_URL).toMatch(/redis:\/\//);
    expect(p.GATEWAY_PORT).toMatch(/<= 65535/);
    expect(p.WORKER_CONCURRENCY).toMatch(/integer/);
    expect(p.API_KEYS).toMatch(/sha256/);
    expect(p.API_KEYS).not.toContain('sk-raw-secret-key');
    expect(p.MODELS).toMatch(/name=dir/);
    expect(p.MODELS).toMatch(/a:b/);
  });

  describe('API_KEYS scopes', () => {
    const h = 'c'.repeat(64);
    const parse = (s: string) => {
      const issues: string[] = [];
      const keys = parseApiKeys(s, (m) => issues.push(m));
      return { keys, issues };
    };

    it('gives every scope to an entry without a list (old configs keep working) or with *', () => {
      expect(ALL_API_SCOPES).toEqual(['generate', 'batch', 'rollout', 'distill', 'models:write']);
      expect(parse(`a:${h}`)).toEqual({ keys: [{ name: 'a', sha256: h, scopes: ALL_API_SCOPES }], issues: [] });
      expect(parse(`a:${h}:*`).keys[0].scopes).toEqual(ALL_API_SCOPES);
    });

    it("reads 'scope+scope' lists, including scopes with ':' in them, in canonical order", () => {
      const { keys, issues } = parse(`a:${h}:batch+generate, b:${'D'.repeat(64)}:models:write , c:${'e'.repeat(64)}:rollout+distill+rollout`);
      expect(issues).toEqual([]);
      expect(keys).toEqual([
        { name: 'a', sha256: h, scopes: ['generate', 'batch'] },
        { name: 'b', sha256: 'd'.repeat(64), scopes: ['models:write'] },
        { name: 'c', sha256: 'e'.repeat(64), scopes: ['rollout', 'distill'] },
      ]);
    });

    it('refuses unknown or empty scope lists, naming the key and the known scopes', () => {
      expect(parse(`a:${h}:generate+admin`).issues).toEqual([expect.stringMatching(/key 'a': unknown scope 'admin' \(known: generate, batch, rollout, distill, models:write, or '\*'\)/)]);
      expect(parse(`a:${h}:`).issues).toEqual([expect.stringMatching(/key 'a': empty scope list/)]);
      expect(parse(`a:${h}:generate+`).issues).toEqual([expect.stringMatching(/unknown scope ''/)]);
      expect(parse(`a:${h}:models`).issues[0]).toMatch(/unknown scope 'models'/);
      expect(parse(`a:${h}:batch,a:${'f'.repeat(64)}`).issues).toEqual([expect.stringMatching(/'a' is listed twice/)]);
    });

    it('never echoes a malformed entry (it may be a raw key)', () => {
      const { issues } = parse('alice:sk-raw-secret:generate');
      expect(issues).toHaveLength(1);
      expect(issues[0]).toMatch(/entry 1: expected 'name:sha256hex' or 'name:sha256hex:scope\+scope'/);
      expect(issues[0]).not.toContain('sk-raw-secret');
      expect(problems({ API_KEYS: `a:${h}:nope` }).API_KEYS).toMatch(/unknown scope 'nope'/);
    });
  });

  it('refuses a worker model that is not served', () => {
    expect(problems({ WORKER_MODEL: 'nope' }).WORKER_MODEL).toMatch(/not one of MODELS \(tiny-dllm\)/);
    expect(problems({ MODELS: 'a=/x,a=/y' }).MODELS).toMatch(/twice/);
  });

  it('docs/CONFIG.md lists every variable and is up to date (UPDATE_CONFIG_DOCS=1 rewrites it)', () => {
    const md = configMarkdown();
    for (const name of Object.keys(ENV)) expect(md).toContain(`\`${name}\``);
    if (process.env.UPDATE_CONFIG_DOCS) fs.writeFileSync(DOC, md);
    expect(fs.readFileSync(DOC, 'utf8')).toBe(md);
  });
});
