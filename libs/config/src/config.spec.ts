import * as fs from 'node:fs';
import * as path from 'node:path';
import { inspect } from 'node:util';
import { ALL_API_SCOPES, ConfigError, configMarkdown, ENV, loadConfig, parseApiKeys, S3_REQUIRED } from './index';

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
    expect(c.storage.backend).toBe('fs');
    expect(c.storage.s3).toBeUndefined();
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
      [
        'API_KEYS',
        'BATCH_ALLOW_SHORT_WINDOWS',
        'GATEWAY_PORT',
        'MODELS',
        'QUEUE_PREFIX',
        'REDIS_URL',
        'WORKER_CONCURRENCY',
        'WORKER_EXECUTION_PROVIDER',
      ].sort(),
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
      expect(parse(`a:${h}:generate+admin`).issues).toEqual([
        expect.stringMatching(/key 'a': unknown scope 'admin' \(known: generate, batch, rollout, distill, models:write, or '\*'\)/),
      ]);
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

  describe('STORAGE_BACKEND and S3_*', () => {
    const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
    const s3env = {
      STORAGE_BACKEND: 's3',
      S3_ENDPOINT: 'https://s3.eu-west-1.amazonaws.com',
      S3_REGION: 'eu-west-1',
      S3_BUCKET: 'dllm-farm-prod',
      S3_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
      S3_SECRET_ACCESS_KEY: SECRET,
    };

    it('shapes the s3 settings (prefix gets its slash, path style by default)', () => {
      const c = loadConfig({ ...s3env, S3_PREFIX: 'farm/prod' }, '/srv');
      expect(c.storage.backend).toBe('s3');
      expect(c.storage.dir).toBe('/srv/var/storage');
      expect(c.storage.s3).toEqual({
        endpoint: 'https://s3.eu-west-1.amazonaws.com',
        region: 'eu-west-1',
        bucket: 'dllm-farm-prod',
        prefix: 'farm/prod/',
        accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
        forcePathStyle: true,
        maxAttempts: 3,
        requestTimeoutMs: 60_000,
        connectTimeoutMs: 5_000,
      });
      expect(c.storage.s3!.secretAccessKey).toBe(SECRET);
      expect(loadConfig({ ...s3env, S3_FORCE_PATH_STYLE: 'false' }).storage.s3!.forcePathStyle).toBe(false);
      expect(loadConfig(s3env).storage.s3!.prefix).toBe('');
      expect(loadConfig({ ...s3env, S3_PREFIX: 'a/' }).storage.s3!.prefix).toBe('a/');
    });

    it('without static keys leaves credentials to the default AWS chain (IRSA, instance roles, SSO)', () => {
      const { S3_ACCESS_KEY_ID: _a, S3_SECRET_ACCESS_KEY: _s, ...keyless } = s3env;
      const s3 = loadConfig(keyless).storage.s3!;
      expect(s3.accessKeyId).toBeUndefined();
      expect(s3.secretAccessKey).toBeUndefined();
      expect(problems({ ...keyless, S3_SECRET_ACCESS_KEY: SECRET }).S3_ACCESS_KEY_ID).toMatch(/give both static keys, or neither/);
    });

    it('reads the retry and timeout bounds (S3_MAX_ATTEMPTS, S3_REQUEST_TIMEOUT_MS, S3_CONNECT_TIMEOUT_MS)', () => {
      const s3 = loadConfig({ ...s3env, S3_MAX_ATTEMPTS: '5', S3_REQUEST_TIMEOUT_MS: '2500', S3_CONNECT_TIMEOUT_MS: '800' }).storage.s3!;
      expect(s3).toMatchObject({ maxAttempts: 5, requestTimeoutMs: 2500, connectTimeoutMs: 800 });
      const p = problems({ ...s3env, S3_MAX_ATTEMPTS: '0', S3_REQUEST_TIMEOUT_MS: 'soon', S3_CONNECT_TIMEOUT_MS: '5' });
      expect(Object.keys(p).sort()).toEqual(['S3_CONNECT_TIMEOUT_MS', 'S3_MAX_ATTEMPTS', 'S3_REQUEST_TIMEOUT_MS']);
    });

    it('keeps the secret key out of JSON and console output of the config', () => {
      const c = loadConfig(s3env, '/srv');
      expect(JSON.stringify(c)).not.toContain(SECRET);
      expect(inspect(c, { depth: 10 })).not.toContain(SECRET);
      // spreading config.storage (what the worker does) keeps it reachable
      expect({ ...c.storage }.s3!.secretAccessKey).toBe(SECRET);
    });

    it('names every S3 variable s3 cannot do without, and ignores S3_* with fs', () => {
      expect(S3_REQUIRED).toEqual(['S3_ENDPOINT', 'S3_REGION', 'S3_BUCKET']);
      const p = problems({ STORAGE_BACKEND: 's3' });
      expect(Object.keys(p).sort()).toEqual([...S3_REQUIRED].sort());
      for (const name of S3_REQUIRED) expect(p[name]).toBe('required when STORAGE_BACKEND=s3');
      const { S3_BUCKET: _b, S3_SECRET_ACCESS_KEY: _s, ...partial } = s3env;
      expect(Object.keys(problems(partial)).sort()).toEqual(['S3_BUCKET', 'S3_SECRET_ACCESS_KEY']);
      expect(problems(partial).S3_SECRET_ACCESS_KEY).toMatch(/set with S3_ACCESS_KEY_ID: give both static keys, or neither/);
      expect(problems({ ...s3env, S3_REGION: '  ' }).S3_REGION).toBe('required when STORAGE_BACKEND=s3');
      const fsConfig = loadConfig({ S3_BUCKET: 'dllm' }, '/srv');
      expect(fsConfig.storage.backend).toBe('fs');
      expect(fsConfig.storage.s3).toBeUndefined();
    });

    it('refuses bad values with a message each, never echoing credentials', () => {
      const p = problems({
        ...s3env,
        STORAGE_BACKEND: 'gcs',
        S3_ENDPOINT: `https://AKID:${SECRET}@minio:9000`,
        S3_BUCKET: 'My_Bucket',
        S3_REGION: 'EU West',
        S3_PREFIX: '/abs/../x',
        S3_FORCE_PATH_STYLE: 'sometimes',
      });
      expect(Object.keys(p).sort()).toEqual(['S3_BUCKET', 'S3_ENDPOINT', 'S3_FORCE_PATH_STYLE', 'S3_PREFIX', 'S3_REGION', 'STORAGE_BACKEND']);
      expect(p.STORAGE_BACKEND).toMatch(/'fs' or 's3'.*got 'gcs'/);
      expect(p.S3_ENDPOINT).toMatch(/http\(s\) URL.*without credentials/);
      expect(p.S3_ENDPOINT).not.toContain(SECRET);
      expect(p.S3_BUCKET).toMatch(/bucket name/);
      expect(p.S3_REGION).toMatch(/us-east-1/);
      expect(p.S3_PREFIX).toMatch(/no leading/);
      expect(p.S3_FORCE_PATH_STYLE).toMatch(/true\/false/);
      expect(problems({ ...s3env, S3_ENDPOINT: 'ftp://x' }).S3_ENDPOINT).not.toContain('ftp://x');
      // the error text of the whole config never carries a secret given in any S3 variable
      try {
        loadConfig({ ...s3env, STORAGE_BACKEND: 'nope' });
      } catch (e) {
        expect((e as Error).message).not.toContain(SECRET);
        expect((e as Error).message).not.toContain('AKIAIOSFODNN7EXAMPLE');
      }
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
