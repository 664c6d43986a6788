// The one batch input parser: BOM, every line ending, blank lines, per-line errors with line
// numbers, file-level refusals. `payload` is a real check (a function of the line), not a stub of
// the catalogue: lines whose prompt is empty are refused as the gateway's resolver would.
import { ApiError } from '../http/api-error';
import { inputLines, parseBatchInput, type InputContext } from './input';

const ctx: InputContext = {
  endpoint: '/v1/completions',
  maxLines: 5,
  payload: (l) => {
    if (!l.prompt) throw new ApiError(400, 'The prompt is empty.', 'empty_prompt', 'prompt');
    return { owner: 'o', model: l.model, prompt: l.prompt, options: l.options, stream: false, endpoint: 'completions', createdAt: 1 };
  },
};
const line = (id: string, prompt = 'hi', extra: Record<string, unknown> = {}) =>
  JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/completions', body: { model: 'm', prompt, ...extra } });

describe('inputLines', () => {
  it('drops one leading BOM, splits on \\n, \\r\\n and \\r, skips blank lines, keeps physical line numbers', () => {
    const text = `\uFEFF${line('a')}\r\n\r\n${line('b')}\r${line('c')}\n   \n${line('d')}`;
    expect(inputLines(Buffer.from(text)).map((l) => [l.lineNo, JSON.parse(l.text).custom_id])).toEqual([
      [1, 'a'],
      [3, 'b'],
      [4, 'c'],
      [6, 'd'],
    ]);
  });

  it('refuses bytes that are not UTF-8 (422)', () => {
    expect(() => inputLines(Buffer.from([0x7b, 0xff, 0x7d]))).toThrow(/not valid UTF-8/);
  });
});

describe('parseBatchInput', () => {
  it('valid lines carry their payload; invalid ones their reason, line number and param', async () => {
    const text = [line('a'), '{oops', line('a'), line('e', ''), JSON.stringify({ custom_id: 'u', method: 'POST', url: '/v1/chat/completions', body: {} })].join(
      '\n',
    );
    const r = await parseBatchInput(Buffer.from(text), ctx);
    expect(r.map((x) => [x.index, x.lineNo, x.customId, x.payload ? 'ok' : x.error!.code, x.error?.param ?? null])).toEqual([
      [0, 1, 'a', 'ok', null],
      [1, 2, null, 'invalid_json', null],
      [2, 3, 'a', 'duplicate_custom_id', 'custom_id'],
      [3, 4, 'e', 'empty_prompt', 'body.prompt'],
      [4, 5, 'u', 'invalid_url', 'url'],
    ]);
    expect(r[3].error!.message).toMatch(/^line 4: /);
  });

  it('file-level refusals: too many lines, no request at all', async () => {
    await expect(parseBatchInput(Buffer.from(Array.from({ length: 6 }, (_, i) => line(`x${i}`)).join('\n')), ctx)).rejects.toThrow(/more than 5/);
    await expect(parseBatchInput(Buffer.from('\uFEFF\r\n  \n'), ctx)).rejects.toThrow(/no requests/);
  });
});
