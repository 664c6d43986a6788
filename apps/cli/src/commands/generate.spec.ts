// dllm-farm generate / eval on a builder-made tiny model (real onnxruntime, no Redis).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildTinyModel } from '@dllm/model';
import { UsageError } from '../command';
import { command as generate } from './generate';
import { command as evalCmd } from './eval';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-cli-gen-'));
  buildTinyModel(dir, { seed: 3, config: { vocab_size: 100 }, manifest: { name: 'cli-tiny', version: 'v1', block_size: 8 } });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const spy = jest.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')));
  try {
    const code = await fn();
    return { code, out: lines.join('\n') };
  } finally {
    spy.mockRestore();
  }
}

describe('dllm-farm generate', () => {
  it('prints text, stats and the trajectory as one JSON object', async () => {
    const { code, out } = await capture(() =>
      generate.run(['--model', dir, '--prompt', 'Q: 1+2=? A:', '--max-new-tokens', '12', '--threshold', '0.5', '--json', '--trajectory']),
    );
    expect(code).toBe(0);
    const r = JSON.parse(out);
    expect(r.usage.promptTokens).toBe(11);
    expect(r.tokenIds.length).toBeGreaterThan(0);
    expect(r.trajectory.stepMap).toHaveLength(r.tokenIds.length);
    expect(r.trajectory.options).toMatchObject({ threshold: 0.5, maxNewTokens: 12, policy: 'fast-dllm-v2' });
    expect(r.model).toEqual({ name: 'cli-tiny', version: 'v1' });
    expect(r.stats.tpf).toBeCloseTo(r.tokenIds.length / r.stats.forwards);
  });

  it('rejects bad flags with a usage error', async () => {
    await expect(generate.run(['--model', dir])).rejects.toThrow(UsageError);
    await expect(generate.run(['--model', dir, '--prompt', 'a', '--threshold', '3'])).rejects.toThrow(/--threshold/);
    await expect(generate.run(['--model', dir, '--prompt', 'a', '--top-k', 'x'])).rejects.toThrow(/--top-k must be a number/);
    await expect(generate.run(['--model', dir, '--prompt', 'a', '--bogus'])).rejects.toThrow(UsageError);
  });
});

describe('dllm-farm eval', () => {
  it('prints accuracy, tokens, forwards, tpf, tokens_per_second and wall_seconds', async () => {
    const { code, out } = await capture(() => evalCmd.run(['--model', dir, '--task', 'arith', '--n', '3', '--seed', '1', '--max-new-tokens', '8', '--json']));
    expect(code).toBe(0);
    const s = JSON.parse(out);
    expect(s).toMatchObject({ task: 'arith', n: 3 });
    for (const k of ['accuracy', 'tokens', 'forwards', 'tpf', 'tokens_per_second', 'wall_seconds']) expect(typeof s[k]).toBe('number');
    expect(s.tokens).toBe(24); // random weights rarely emit EOS: 3 x 8 tokens
    await expect(evalCmd.run(['--model', dir, '--task', 'nope'])).rejects.toThrow(/unknown task/);
  });
});
