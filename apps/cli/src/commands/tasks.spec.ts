import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTokenizerJson, problems } from '@dllm/tasks';
import { UsageError } from '../command';
import { command } from './tasks';

describe('dllm-farm tasks', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'dllm-tasks-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the same problems as the library, as JSONL', async () => {
    const file = join(dir, 'arith.jsonl');
    const err = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    expect(await command.run(['--family', 'arith', '--split', 'test', '--n', '2500', '--seed', '4', '--jsonl', file])).toBe(0);
    err.mockRestore();
    const lines = readFileSync(file, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    const expected = problems('arith', { split: 'test', seed: 4, n: 2500 });
    expect(lines).toHaveLength(2500);
    expect(lines.map(({ split, ...rest }) => (expect(split).toBe('test'), rest))).toEqual(expected);
  });

  it('writes the tokenizer', async () => {
    const file = join(dir, 'tokenizer.json');
    const err = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    expect(await command.run(['tokenizer', '--out', file])).toBe(0);
    err.mockRestore();
    expect(readFileSync(file, 'utf8')).toBe(buildTokenizerJson());
  });

  it('rejects bad flags with a usage error', async () => {
    await expect(command.run([])).rejects.toThrow(/--family is required/);
    await expect(command.run(['--family', 'poetry'])).rejects.toThrow(/unknown family 'poetry'/);
    await expect(command.run(['--family', 'arith', '--n', '-3'])).rejects.toThrow(UsageError);
    await expect(command.run(['--family', 'arith', '--split', 'dev'])).rejects.toThrow(/--split/);
    await expect(command.run(['--bogus'])).rejects.toThrow(UsageError);
    await expect(command.run(['frobnicate'])).rejects.toThrow(/unknown subcommand/);
  });
});
