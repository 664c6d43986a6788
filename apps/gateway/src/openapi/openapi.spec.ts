import * as fs from 'node:fs';
import * as path from 'node:path';
import { openApiText } from './openapi-doc';

const FILE = path.resolve(__dirname, '../../../../docs/openapi.json');

describe('OpenAPI document', () => {
  it('is generated from code and matches docs/openapi.json (run UPDATE_OPENAPI=1 npx jest apps/gateway/src/openapi to refresh)', async () => {
    const text = await openApiText();
    if (process.env.UPDATE_OPENAPI) fs.writeFileSync(FILE, text);
    const doc = JSON.parse(text);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/completions', '/v1/chat/completions', '/v1/batches', '/v1/files', '/v1/jobs/{id}']));
    // request bodies come from the zod schemas
    expect(doc.paths['/v1/completions'].post.requestBody.content['application/json'].schema.$ref).toBe('#/components/schemas/CreateCompletionRequest');
    const body = doc.components.schemas.CreateCompletionRequest;
    expect(body.properties.block_size.type).toBe('integer');
    expect(body.required).toEqual(expect.arrayContaining(['model', 'prompt']));
    expect(fs.existsSync(FILE) ? fs.readFileSync(FILE, 'utf8') : '(missing docs/openapi.json)').toBe(text);
  });

  it('is deterministic', async () => {
    expect(await openApiText()).toBe(await openApiText());
  });
});
