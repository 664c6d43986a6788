-- Registers a policy version atomically: sequence assignment, the versions hash, `latest` and the
-- announcement are one step, so concurrent registrations through several gateways can never leave
-- `latest` below the highest sequence number nor announce versions out of order.
-- Loaded once per connection with ioredis defineCommand (EVALSHA afterwards) by PolicyRegistry.
--
-- KEYS[1]  hash    <prefix>:dllm-models:<name>:versions   version -> JSON entry
-- KEYS[2]  string  <prefix>:dllm-models:<name>:seq        last sequence number given (INCR)
-- KEYS[3]  string  <prefix>:dllm-models:<name>:latest     version with the highest sequence number
-- ARGV[1]  model name
-- ARGV[2]  version (immutable: an existing one is refused)
-- ARGV[3]  model directory
-- ARGV[4]  createdAt, ms since the epoch (decimal integer string)
-- ARGV[5]  pub/sub channel of announcements (<prefix>:dllm-models)
--
-- Returns the new sequence number, or 0 when the version already exists (nothing written).
-- The entry and the announcement are JSON written here ({name, version, seq, dir, createdAt} and
-- {name, version, dir, seq}); strings are encoded with cjson, numbers are integers.
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then
  return 0
end
local seq = redis.call('INCR', KEYS[2])
local name = cjson.encode(ARGV[1])
local version = cjson.encode(ARGV[2])
local dir = cjson.encode(ARGV[3])
local entry = '{"name":' .. name .. ',"version":' .. version .. ',"seq":' .. seq .. ',"dir":' .. dir .. ',"createdAt":' .. ARGV[4] .. '}'
redis.call('HSET', KEYS[1], ARGV[2], entry)
redis.call('SET', KEYS[3], ARGV[2])
redis.call('PUBLISH', ARGV[5], '{"name":' .. name .. ',"version":' .. version .. ',"dir":' .. dir .. ',"seq":' .. seq .. '}')
return seq
