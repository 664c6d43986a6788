import { cancelChannel, cancelKey, jobOptions, resultBlobKey, retentionOptions } from './index';

describe('queue options and keys', () => {
  const retention = { completed: { count: 100, ageSeconds: 60 }, failed: { count: 5, ageSeconds: 600 } };
  it('merges the catalogue defaults with retention by count and age', () => {
    expect(retentionOptions(retention)).toEqual({ removeOnComplete: { count: 100, age: 60 }, removeOnFail: { count: 5, age: 600 } });
    const o = jobOptions('generation', retention, { jobId: 'j1' });
    expect(o).toMatchObject({ attempts: 2, jobId: 'j1', removeOnComplete: { count: 100, age: 60 } });
  });
  it('keeps every shared key under the queue prefix', () => {
    expect(cancelKey('p1', 'dllm.generation.m', 'j')).toBe('p1:dllm-cancel:dllm.generation.m:j');
    expect(cancelChannel('p1')).toBe('p1:dllm-cancel');
    expect(resultBlobKey('dllm.generation.m', 'j')).toBe('dllm.generation.m:j');
  });
});

describe('redisOptionsFromUrl', () => {
  it('reads host, port, credentials, db and TLS', () => {
    const { redisOptionsFromUrl } = require('./index');
    expect(redisOptionsFromUrl('redis://127.0.0.1:6390')).toMatchObject({ host: '127.0.0.1', port: 6390, db: 0, maxRetriesPerRequest: null });
    expect(redisOptionsFromUrl('rediss://u:p%40ss@h/3')).toMatchObject({ host: 'h', port: 6379, username: 'u', password: 'p@ss', db: 3, tls: {} });
  });
});
