// Integration and e2e tests need a Redis: REDIS_URL when it answers, else a private redis-server
// on a spare port (scripts/redis.js), stopped in global-teardown. `npm test` alone is enough.
const { ensureRedis } = require('../scripts/redis');

module.exports = async () => {
  if (globalThis.__dllmRedis) return; // one per run, shared by the integration and e2e projects
  const redis = await ensureRedis({ log: (m) => process.stderr.write(`\n[test] ${m}\n`) });
  globalThis.__dllmRedis = redis;
  process.env.REDIS_URL = redis.url;
};
