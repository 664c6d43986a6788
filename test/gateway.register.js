// Lets e2e tests run the real gateway/worker processes straight from TypeScript sources (no build):
// `node -r ./test/gateway.register.js apps/gateway/src/main.ts`. Transpiles .ts with @swc/core
// (the same .swcrc jest uses) and resolves the @dllm/<lib> aliases from tsconfig paths.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const swc = require('@swc/core');

const root = path.resolve(__dirname, '..');
const swcrc = JSON.parse(fs.readFileSync(path.join(root, '.swcrc'), 'utf8'));
delete swcrc.$schema;
const paths = require(path.join(root, 'tsconfig.json')).compilerOptions.paths;
const aliases = Object.entries(paths).map(([alias, [target]]) => [alias, path.join(root, target)]);

const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  for (const [alias, target] of aliases) {
    if (request === alias) return resolve.call(this, target, parent, ...rest);
    if (request.startsWith(alias + '/')) return resolve.call(this, path.join(target, request.slice(alias.length + 1)), parent, ...rest);
  }
  return resolve.call(this, request, parent, ...rest);
};

require.extensions['.ts'] = function (module, filename) {
  const src = fs.readFileSync(filename, 'utf8');
  const out = swc.transformSync(src, { ...swcrc, filename, swcrc: false, sourceMaps: 'inline' });
  module._compile(out.code, filename);
};
