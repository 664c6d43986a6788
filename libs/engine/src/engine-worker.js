// worker_threads entry of the engine thread (plain CommonJS: a worker cannot start from .ts).
// Built: loads engine-host.js next to it. From sources (jest, `node -r test/gateway.register.js`):
// registers the repository's swc require hook first, then loads engine-host.ts.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const built = path.join(__dirname, 'engine-host.js');
let host;
if (fs.existsSync(built)) {
  host = require(built);
} else {
  require(path.resolve(__dirname, '../../../test/gateway.register.js'));
  host = require(path.join(__dirname, 'engine-host.ts'));
}
host.runEngineHost().catch((err) => {
  // runEngineHost reports load errors itself; anything else ends the thread with the error.
  setImmediate(() => {
    throw err;
  });
});
