import type { z } from 'zod';
import { ApiError, fromZodError } from './api-error';

/** Validates a request body against its one schema; 400 when there is no JSON object at all. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(400, 'The request body must be a JSON object (Content-Type: application/json).', 'invalid_body');
  }
  const r = schema.safeParse(body);
  if (!r.success) throw fromZodError(r.error);
  return r.data;
}

/** Ids in paths: short, no ':' or '/' (they become Redis key parts and BullMQ job ids). */
export function checkId(id: string, what: string): string {
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(id)) throw ApiError.notFound(what, id.slice(0, 128));
  return id;
}
