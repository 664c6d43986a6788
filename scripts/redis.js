// Finds a Redis for the demo, the tests and CI: REDIS_URL (default redis://127.0.0.1:6379) when it
// answers PING; otherwise a private `redis-server` on a spare loopback port, in a temp dir, with no
// persistence. Usable as a module (`ensureRedis()`) or from the shell:
//   eval "$(node scripts/redis.js --export)"   # prints `export REDIS_URL=...; export DLLM_PRIVATE_REDIS_PID=...`
'use strict';
const net = require('node:net');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

function ping(url, timeoutMs = 1000) {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port || 6379), u.hostname.replace(/^\[|\]$/g, ''));
    let buf = '';
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('error', () => done(false));
    s.once('connect', () => {
      const auth = u.password ? `AUTH ${decodeURIComponent(u.username || 'default')} ${decodeURIComponent(u.password)}\r\n` : '';
      s.write(`${auth}PING\r\n`);
    });
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('+PONG')) done(true);
      else if (buf.includes('-')) done(false);
    });
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function installHint() {
  return [
    'No Redis answers and no redis-server is installed. Install one, then run the command again:',
    '  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y redis-server',
    '  macOS:         brew install redis',
    '  or point REDIS_URL at a Redis you run (e.g. docker run -p 6379:6379 redis:7).',
  ].join('\n');
}

/** @returns {Promise<{url: string, private: boolean, pid?: number, stop: () => void}>} */
async function ensureRedis({ url = process.env.REDIS_URL || 'redis://127.0.0.1:6379', log = () => {} } = {}) {
  if (await ping(url)) return { url, private: false, stop() {} };
  const which = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  if (which.status !== 0) throw new Error(installHint());
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-redis-'));
  const child = spawn(
    which.stdout.trim(),
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--maxmemory-policy', 'noeviction'],
    { stdio: 'ignore', detached: true },
  );
  child.unref();
  const privateUrl = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50; i++) {
    if (await ping(privateUrl, 200)) {
      log(`started a private redis-server on ${privateUrl} (pid ${child.pid})`);
      return {
        url: privateUrl,
        private: true,
        pid: child.pid,
        stop() {
          try {
            process.kill(child.pid, 'SIGTERM');
          } catch {
            /* already gone */
          }
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  throw new Error(`redis-server did not answer on ${privateUrl} within 5 s`);
}

module.exports = { ensureRedis, ping };

if (require.main === module) {
  ensureRedis({ log: (m) => process.stderr.write(`${m}\n`) }).then(
    (r) => {
      if (process.argv.includes('--export')) {
        process.stdout.write(`export REDIS_URL=${r.url}\n${r.pid ? `export DLLM_PRIVATE_REDIS_PID=${r.pid}\n` : ''}`);
      } else process.stdout.write(`${r.url}\n`);
    },
    (e) => {
      process.stderr.write(`${e.message}\n`);
      process.exit(1);
    },
  );
}
