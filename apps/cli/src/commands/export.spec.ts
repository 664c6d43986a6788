import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UsageError } from '../command';
import { command } from './export';

const AR = path.resolve(__dirname, '../../../../models/tiny-ar');

describe('dllm-farm export', () => {
  let tmp: string;
  beforeAll(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-cli-export-'))));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('rejects bad usage and unknown formats', async () => {
    await expect(command.run(['only-one'])).rejects.toThrow(UsageError);
    await expect(command.run(['a', 'b', '--format', 'gguf'])).rejects.toThrow(/--format must be one of checkpoint, transformers.js/);
  });

  it('--format transformers.js writes the folder and prints one JSON object with --json', async () => {
    const writes: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (writes.push(String(s)), true));
    try {
      expect(await command.run(['--format', 'transformers.js', AR, path.join(tmp, 'tjs'), '--json'])).toBe(0);
    } finally {
      spy.mockRestore();
    }
    const r = JSON.parse(writes.join(''));
    const files = [path.join('onnx', 'model.onnx'), 'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'];
    expect(r.files).toEqual(expect.arrayContaining(files));
    expect(r.prunedNodes).toBeGreaterThan(0); // the v2 statistics (argmax, max_prob, log_sum_exp, entropy)
    const gen = JSON.parse(fs.readFileSync(path.join(tmp, 'tjs', 'generation_config.json'), 'utf8'));
    expect(gen).toMatchObject({ eos_token_id: 1, pad_token_id: 0, bad_words_ids: [[2]] });
  });
});
