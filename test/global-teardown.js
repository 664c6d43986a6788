module.exports = async () => {
  const redis = globalThis.__dllmRedis;
  if (redis && redis.private) redis.stop();
  globalThis.__dllmRedis = undefined;
};
