#!/usr/bin/env node
// Build step after tsc: copies non-TypeScript runtime assets (Redis Lua scripts) from libs/ and
// apps/ into dist/ at the same relative paths, so code that reads them next to __dirname finds them.
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const EXT = new Set(['.lua']);
let n = 0;
function walk(rel) {
  for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) walk(r);
    else if (EXT.has(path.extname(e.name))) {
      fs.mkdirSync(path.join(root, 'dist', rel), { recursive: true });
      fs.copyFileSync(path.join(root, r), path.join(root, 'dist', r));
      n++;
    }
  }
}
for (const top of ['libs', 'apps']) walk(top);
console.log(`copy-assets: ${n} file(s) into dist/`);
