// Writes docs/openapi.json from the code (`npm run openapi` after a build, or
// `UPDATE_OPENAPI=1 npx jest apps/gateway/src/openapi`). A unit test fails when the file drifts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openApiText } from './openapi-doc';

export const OPENAPI_PATH = path.resolve(__dirname, '../../../../docs/openapi.json');

if (require.main === module) {
  const target = process.argv[2] ?? path.resolve(process.cwd(), 'docs/openapi.json');
  void openApiText().then((text) => {
    fs.writeFileSync(target, text);
    console.log(`wrote ${target} (${text.length} bytes)`);
  });
}
