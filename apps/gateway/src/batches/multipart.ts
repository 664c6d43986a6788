// multipart/form-data uploads (POST /v1/files, POST /v1/models/:name/versions), read with
// @fastify/multipart (busboy underneath) as a stream: each file part goes straight to its sink (the
// file store, a model folder) while it arrives, so an upload never sits in memory whole and its
// size is bounded per file by FILE_LIMIT_BYTES, not by the JSON body limit. The plugin is
// registered once in bootstrap.ts (registerMultipart); this module maps its errors to ApiErrors.
import fastifyMultipart from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { ApiError } from '../http/api-error';
import { MAX_UPLOAD_FILES } from '../http/body-policy';

/** Largest non-file field (e.g. `purpose`). */
export const MAX_FIELD_BYTES = 64 * 1024;

/** One file part, handed to the caller's sink while it streams. */
export interface UploadedFile {
  /** The form field name. */
  name: string;
  /** The client's file name ('' when none was sent). */
  filename: string;
  mimetype: string;
  /** The bytes; the sink must consume it (or the upload stalls). */
  stream: Readable;
}

/**
 * Registers @fastify/multipart on the gateway: per-file limit `fileBytes` (FILE_LIMIT_BYTES), at most
 * MAX_UPLOAD_FILES files, 16 fields of MAX_FIELD_BYTES each.
 */
export async function registerMultipart(fastify: FastifyInstance, fileBytes: number): Promise<void> {
  await fastify.register(fastifyMultipart, {
    limits: { fileSize: fileBytes, files: MAX_UPLOAD_FILES, fields: 16, fieldSize: MAX_FIELD_BYTES, parts: MAX_UPLOAD_FILES + 16, headerPairs: 32 },
  });
}

/** @fastify/multipart / busboy errors -> the client error they are. */
export function multipartError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const err = e as { code?: string; message?: string };
  switch (err.code) {
    case 'FST_REQ_FILE_TOO_LARGE':
      return new ApiError(413, 'An uploaded file is over FILE_LIMIT_BYTES.', 'request_too_large');
    case 'FST_FILES_LIMIT':
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new ApiError(413, `Too many parts in the upload (at most ${MAX_UPLOAD_FILES} files and 16 fields).`, 'request_too_large');
    case 'FST_PROTO_VIOLATION':
      return new ApiError(400, 'A multipart field is named after an object prototype property.', 'invalid_multipart');
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return new ApiError(415, 'Upload as multipart/form-data.', 'unsupported_media_type');
  }
  return new ApiError(400, `Malformed multipart body: ${err.message ?? String(e)}`, 'invalid_multipart');
}

/**
 * Reads a multipart request part by part. Each file goes to `onFile` as a stream (one at a time, in
 * the order sent); fields are collected. Throws ApiError 413 when a file passes the limit (the sink
 * has then seen a truncated stream and must drop what it wrote: `onFile` gets the error from its
 * stream), 400 on a malformed body.
 *
 * @returns the text fields, in a prototype-less map (a field named `constructor` is just a field)
 */
export async function readMultipart(req: FastifyRequest, onFile: (file: UploadedFile) => Promise<void>): Promise<Map<string, string>> {
  const fields = new Map<string, string>();
  try {
    for await (const part of req.parts()) {
      if (part.type === 'field') {
        fields.set(part.fieldname, typeof part.value === 'string' ? part.value : String(part.value));
        continue;
      }
      // A file over the limit: busboy stops the stream early and flags it; make the sink see an error.
      part.file.once('limit', () => part.file.destroy(new ApiError(413, `File part '${part.fieldname}' is over FILE_LIMIT_BYTES.`, 'request_too_large')));
      await onFile({ name: part.fieldname, filename: part.filename ?? '', mimetype: part.mimetype, stream: part.file });
      if (part.file.truncated) throw new ApiError(413, `File part '${part.fieldname}' is over FILE_LIMIT_BYTES.`, 'request_too_large');
    }
  } catch (e) {
    throw multipartError(e);
  }
  return fields;
}

/** Consumes a stream and throws its bytes away (a part the route does not want). */
export async function discard(stream: Readable): Promise<void> {
  for await (const _ of stream) {
    /* drop */
  }
}
