// A small multipart/form-data reader for POST /v1/files (the openai client uploads this way):
// fields come back as strings, the file part as a Buffer. The whole body is already bounded by
// FILE_LIMIT_BYTES before it gets here.
import { ApiError } from '../http/api-error';

export interface MultipartPart {
  name: string;
  filename?: string;
  contentType?: string;
  data: Buffer;
}

export function boundaryOf(contentType: string | undefined): string {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? '');
  if (!m) throw new ApiError(400, 'multipart/form-data without a boundary.', 'invalid_multipart');
  return m[1] ?? m[2];
}

export function parseMultipart(body: Buffer, contentType: string | undefined): MultipartPart[] {
  const boundary = Buffer.from(`--${boundaryOf(contentType)}`);
  const parts: MultipartPart[] = [];
  let pos = body.indexOf(boundary);
  if (pos < 0) throw new ApiError(400, 'Malformed multipart body: boundary not found.', 'invalid_multipart');
  for (;;) {
    pos += boundary.length;
    if (body.subarray(pos, pos + 2).toString() === '--') break; // closing boundary
    if (body.subarray(pos, pos + 2).toString() !== '\r\n') throw new ApiError(400, 'Malformed multipart body.', 'invalid_multipart');
    pos += 2;
    const headEnd = body.indexOf('\r\n\r\n', pos);
    if (headEnd < 0) throw new ApiError(400, 'Malformed multipart body: part without headers.', 'invalid_multipart');
    const headers = body.subarray(pos, headEnd).toString('utf8').split('\r\n');
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), boundary]), headEnd + 4);
    if (next < 0) throw new ApiError(400, 'Malformed multipart body: unterminated part.', 'invalid_multipart');
    const part: MultipartPart = { name: '', data: body.subarray(headEnd + 4, next) };
    for (const h of headers) {
      const [k, ...rest] = h.split(':');
      const v = rest.join(':').trim();
      if (k.toLowerCase() === 'content-disposition') {
        part.name = /\bname="([^"]*)"/i.exec(v)?.[1] ?? '';
        const fn = /\bfilename="([^"]*)"/i.exec(v)?.[1];
        if (fn !== undefined) part.filename = fn;
      } else if (k.toLowerCase() === 'content-type') part.contentType = v;
    }
    parts.push(part);
    pos = next + 2;
  }
  return parts;
}
