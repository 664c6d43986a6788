import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildTinyModel, loadModelDir, writeSafetensors } from '@dllm/model';
import { UsageError } from '../command';
import { command } from './convert';

describe('dllm-farm convert', () => {
  let tmp: string;
  beforeAll(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-cli-convert-'))));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('rejects bad usage', async () => {
    await expect(command.run(['only-one'])).rejects.toThrow(UsageError);
    await expect(command.run(['a', 'b', '--block-size', 'x'])).rejects.toThrow(/--block-size must be a non-negative integer/);
    await expect(command.run(['a', 'b', '--kind', 'ar'])).rejects.toThrow(/--kind must be/);
    await expect(command.run(['a', 'b', '--bogus'])).rejects.toThrow(UsageError);
  });

  it('converts an HF directory and prints one JSON object with --json', async () => {
    // an HF checkpoint made from a tiny model's weights
    const tiny = buildTinyModel(path.join(tmp, 'tiny'), { seed: 2, config: { num_layers: 1, vocab_size: 110 } });
    const hf = path.join(tmp, 'hf');
    const a = tiny.manifest.architecture;
    const shapeOf = (n: string, d: Float32Array) =>
      n.endsWith('norm.weight') || n.endsWith('bias')
        ? [d.length]
        : n.includes('down_proj')
          ? [a.hidden_size, d.length / a.hidden_size]
          : [d.length / a.hidden_size, a.hidden_size];
    writeSafetensors(
      path.join(hf, 'model.safetensors'),
      Object.fromEntries(Object.entries(tiny.weights).map(([n, d]) => [n, { shape: shapeOf(n, d), data: d, dtype: 'BF16' as const }])),
    );
    fs.copyFileSync(path.join(tiny.dir, 'tokenizer.json'), path.join(hf, 'tokenizer.json'));
    fs.writeFileSync(
      path.join(hf, 'config.json'),
      JSON.stringify({
        model_type: 'qwen2',
        vocab_size: 110,
        hidden_size: a.hidden_size,
        intermediate_size: a.intermediate_size,
        num_hidden_layers: 1,
        num_attention_heads: a.num_attention_heads,
        num_key_value_heads: a.num_key_value_heads,
        head_dim: a.head_dim,
      }),
    );
    const writes: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (writes.push(String(s)), true));
    try {
      expect(await command.run([hf, path.join(tmp, 'out'), '--json', '--block-size', '8', '--version', 'v1'])).toBe(0);
    } finally {
      spy.mockRestore();
    }
    const res = JSON.parse(writes.join(''));
    expect(res.manifest).toMatchObject({ version: 'v1', block_size: 8, tokens: { mask: 2, eos: 1, pad: 0, bos: 3 } });
    expect((await loadModelDir(path.join(tmp, 'out'))).manifest.vocab_size).toBe(110);
  });
});
