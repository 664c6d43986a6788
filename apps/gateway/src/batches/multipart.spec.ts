import { ApiError } from '../http/api-error';
import { parseMultipart } from './multipart';

async function encode(form: FormData): Promise<{ body: Buffer; type: string }> {
  const res = new Response(form);
  return { body: Buffer.from(await res.arrayBuffer()), type: res.headers.get('content-type')! };
}

describe('multipart reader', () => {
  it('reads fields and a file exactly as fetch/openai encode them', async () => {
    const form = new FormData();
    form.set('purpose', 'batch');
    const content = '{"a":1}\r\n{"b":"\\u00e9 --x"}\n';
    form.set('file', new Blob([content]), 'in.jsonl');
    const { body, type } = await encode(form);
    const parts = parseMultipart(body, type);
    expect(parts.map((p) => p.name)).toEqual(['purpose', 'file']);
    expect(parts[0].data.toString()).toBe('batch');
    expect(parts[1].filename).toBe('in.jsonl');
    expect(parts[1].data.toString()).toBe(content);
  });

  it('rejects bodies without a boundary or with a broken one', () => {
    expect(() => parseMultipart(Buffer.from('x'), 'multipart/form-data')).toThrow(ApiError);
    expect(() => parseMultipart(Buffer.from('nothing here'), 'multipart/form-data; boundary=abc')).toThrow(/boundary not found/);
    expect(() => parseMultipart(Buffer.from('--abc\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue'), 'multipart/form-data; boundary=abc')).toThrow(/unterminated/);
  });
});
