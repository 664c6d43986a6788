// The onRequest body check: key first, then Content-Type, then declared length, all before reading.
import { ApiKeyRing, hashApiKey } from '../auth/api-keys';
import { checkBody, JSON_TYPE, MAX_UPLOAD_FILES, MULTIPART_TYPE } from './body-policy';

const keys = new ApiKeyRing([{ name: 'a', sha256: hashApiKey('sk-a') }]);
const limits = { jsonBytes: 1000, fileBytes: 10_000 };
const req = (headers: Record<string, string>, accepts?: string[]) => ({
  method: 'POST',
  headers,
  routeOptions: { url: '/v1/x', config: accepts ? { accepts } : {} },
});
const key = { authorization: 'Bearer sk-a' };
const code = (r: ReturnType<typeof req>) => {
  const e = checkBody(r as never, keys, limits);
  return e ? [e.status, e.code] : 'ok';
};

describe('checkBody (before the body is read)', () => {
  it('lets body-less requests through untouched (the guard decides about them)', () => {
    expect(code(req({}))).toBe('ok');
    expect(code(req({ 'content-length': '0' }))).toBe('ok');
  });

  it('refuses in order: key (401), then Content-Type (415), then declared length (413)', () => {
    const huge = String(90 * 1024 * 1024);
    expect(code(req({ 'content-length': huge, 'content-type': 'text/plain' }))).toEqual([401, 'missing_api_key']);
    expect(code(req({ 'content-length': huge, 'content-type': 'text/plain', authorization: 'Bearer nope' }))).toEqual([401, 'invalid_api_key']);
    expect(code(req({ 'content-length': huge, 'content-type': 'text/plain', ...key }))).toEqual([415, 'unsupported_media_type']);
    expect(code(req({ 'content-length': huge, 'content-type': 'application/json; charset=utf-8', ...key }))).toEqual([413, 'request_too_large']);
    expect(code(req({ 'content-length': '1000', 'content-type': JSON_TYPE, ...key }))).toBe('ok');
    expect(code(req({ 'transfer-encoding': 'chunked', ...key }))).toEqual([415, 'unsupported_media_type']);
  });

  it('uses the route allow-list and the per-file limit for multipart', () => {
    const up = (len: number) => req({ 'content-length': String(len), 'content-type': `${MULTIPART_TYPE}; boundary=x`, ...key }, [MULTIPART_TYPE]);
    expect(code(up(5000))).toBe('ok'); // over the JSON limit, within one file's
    expect(code(up(MAX_UPLOAD_FILES * 10_000 + 2 * 1024 * 1024))).toEqual([413, 'request_too_large']);
    expect(code(req({ 'content-length': '10', 'content-type': JSON_TYPE, ...key }, [MULTIPART_TYPE]))).toEqual([415, 'unsupported_media_type']);
  });
});
