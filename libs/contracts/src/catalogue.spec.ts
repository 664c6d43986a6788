import { catalogue, generationJob, JobValidationError, JOB_KINDS, parseProgress, parseQueueName, queueName, QUEUES } from './index';

const payload = {
  owner: 'alice',
  model: 'tiny-dllm',
  prompt: '1+1=',
  options: { blockSize: 8, threshold: 0.8 },
  stream: false,
  endpoint: 'completions',
  createdAt: 1,
};

describe('queue names', () => {
  it('are frozen and routed per model without ":"', () => {
    expect(Object.isFrozen(QUEUES)).toBe(true);
    expect(queueName('generation', 'tiny-dllm')).toBe('dllm.generation.tiny-dllm');
    expect(queueName('rollout')).toBe('dllm.rollout');
    expect(parseQueueName('dllm.generation.tiny-ar')).toEqual({ kind: 'generation', model: 'tiny-ar' });
    expect(parseQueueName('dllm.distill')).toEqual({ kind: 'distill' });
    expect(parseQueueName('other')).toBeUndefined();
    expect(() => queueName('generation', 'a:b')).toThrow(/cannot be part of a queue name/);
    expect(() => queueName('nope' as never)).toThrow(/unknown queue kind/);
  });
});

describe('catalogue', () => {
  it('has one definition per kind, keyed by its kind', () => {
    expect(JOB_KINDS).toEqual(['generation', 'rollout', 'distill']);
    for (const k of JOB_KINDS) expect(catalogue[k].kind).toBe(k);
    expect(generationJob.name).toBe('generate');
    expect(Object.isFrozen(generationJob)).toBe(true);
  });

  it('accepts a valid generation payload and keeps the options as sent (no defaults added)', () => {
    const p = generationJob.parsePayload({ ...payload, batch: { batchId: 'b1', customId: 'x', line: 3 } });
    expect(p.options).toEqual({ blockSize: 8, threshold: 0.8 });
    expect(p.batch).toEqual({ batchId: 'b1', customId: 'x', line: 3 });
  });

  it('rejects bad payloads with the engine option ranges and paths', () => {
    const bad = generationJob.safeParsePayload({ ...payload, options: { blockSize: 0, policy: 'magic', bogus: 1 } });
    expect(bad.success).toBe(false);
    const paths = bad.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['options.blockSize', 'options.policy']));
    expect(() => generationJob.parsePayload({ ...payload, endpoint: 'x', extra: 1 })).toThrow(JobValidationError);
    expect(() => generationJob.parsePayload({ ...payload, prompt: 5 })).toThrow(/prompt/);
  });

  it('validates results and progress events', () => {
    const result = {
      text: 'ab',
      finishReason: 'stop',
      usage: { promptTokens: 3, completionTokens: 2 },
      stats: { forwards: 1, tpf: 2, wallMs: 3 },
      model: { name: 'm', version: '1' },
    };
    expect(generationJob.parseResult(result)).toMatchObject(result);
    expect(() => generationJob.parseResult({ ...result, finishReason: 'eos' })).toThrow(/finishReason/);
    expect(parseProgress({ blocks: 1, completionTokens: 4, forwards: 2, text: 'ab' })).toEqual({ blocks: 1, completionTokens: 4, forwards: 2, text: 'ab' });
    expect(parseProgress(0.5)).toBeUndefined();
    expect(parseProgress({ text: 1 })).toBeUndefined();
  });
});
