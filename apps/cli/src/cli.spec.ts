// The real dllm-farm process (from source through test/gateway.register.js): exit statuses and every
// command's --help. Unit project: no Redis, no network, no model is loaded.
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { COMMANDS } from './registry';

const ROOT = path.resolve(__dirname, '../../..');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['-r', path.join(ROOT, 'test/gateway.register.js'), path.join(ROOT, 'apps/cli/src/main.ts'), ...args],
      { cwd: ROOT, env: { ...process.env, DLLM_DEBUG: '' }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

jest.setTimeout(120_000);

describe('dllm-farm exit status: 2 for bad usage, 1 for other failures, 0 for success', () => {
  test.each([
    [['eval', '--task', 'nope'], /unknown task 'nope'/],
    [['eval', '--task', 'arith', '--bogus'], /Unknown option '--bogus'/],
    [['eval', '--task', 'arith', '--n', '0'], /--n must be an integer >= 1/],
    [['tasks', '--family', 'arith', '--split', 'dev'], /--split must be 'train' or 'test'/],
    [['eval', '--task', 'arith', '--split', 'dev'], /--split must be 'train' or 'test'/],
    [['quantize', 'a', 'b'], /--weights is required/],
    [['status'], /expected one batch or job id/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [[], /Usage: dllm-farm <command>/],
  ])('%j exits 2 with the message on stderr and no stack trace', async (args, message) => {
    const r = await cli(args);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(2);
  });

  test('a failure that is not a usage error exits 1', async () => {
    const r = await cli(['export', path.join(ROOT, 'no-such-model-dir'), path.join(ROOT, 'no-such-out-dir')]);
    expect(r.stderr).toMatch(/^dllm-farm: model directory .*no-such-model-dir: does not exist or is not a directory/);
    expect(r.code).toBe(1);
  });

  test('--help exits 0 with the usage on stdout', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Exit status: 0 success, 1 failure, 2 bad usage/);
  });
});

describe("every command's --help", () => {
  // One process per command, all at once: each prints its help and exits 0.
  let helps: [string, Run][];
  beforeAll(async () => {
    helps = await Promise.all(Object.keys(COMMANDS).map(async (name): Promise<[string, Run]> => [name, await cli([name, '--help'])]));
  });

  test('prints on stdout and exits 0', () => {
    for (const [name, r] of helps) {
      expect({ name, code: r.code, stderr: r.stderr }).toEqual({ name, code: 0, stderr: '' });
      expect(r.stdout).toMatch(/Usage/);
    }
  });

  test('lists each flag once (one flag, one meaning)', () => {
    for (const [name, r] of helps) {
      const flags = [...r.stdout.matchAll(/^\s+(--[a-z0-9-]+)/gm)].map((m) => m[1]);
      const twice = flags.filter((f, i) => flags.indexOf(f) !== i);
      expect({ name, twice }).toEqual({ name, twice: [] });
    }
  });
});
