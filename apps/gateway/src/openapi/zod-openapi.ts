// OpenAPI from the same zod schemas that validate requests (no DTO classes duplicating them).
// Schemas with `.meta({ id })` become components (#/components/schemas/<id>), others are inlined.
import { z } from 'zod';
import type { SchemaObject, ReferenceObject } from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';

const REF = (id: string) => `#/components/schemas/${id}`;

function clean(js: Record<string, unknown>): Record<string, unknown> {
  delete js.$schema;
  delete js.id;
  delete js.$id;
  return js;
}

/** The schema of a route's body or response: a $ref for named schemas, inline otherwise. */
export function jsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'input'): SchemaObject | ReferenceObject {
  const id = z.globalRegistry.get(schema)?.id;
  if (id) return { $ref: REF(id) };
  return clean(z.toJSONSchema(schema, { target: 'openapi-3.0', io, unrepresentable: 'any' }) as Record<string, unknown>) as SchemaObject;
}

/** Every named schema, for document.components.schemas. */
export function namedSchemas(): Record<string, SchemaObject> {
  const all = z.toJSONSchema(z.globalRegistry, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any', uri: REF }) as {
    schemas: Record<string, Record<string, unknown>>;
  };
  return Object.fromEntries(Object.entries(all.schemas).map(([k, v]) => [k, clean(v) as SchemaObject]));
}
