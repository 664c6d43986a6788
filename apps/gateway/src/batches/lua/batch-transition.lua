-- Moves a batch to a new status only from one of the allowed current ones (one replica wins).
-- KEYS[1]  the batch hash
-- ARGV[1]  the new status
-- ARGV[2]  the timestamp field to set (e.g. in_progress_at)
-- ARGV[3]  now, seconds since epoch
-- ARGV[4..] the allowed current statuses
-- Returns 1 when moved, 0 when the batch is missing or in another status.
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 0 end
for i = 4, #ARGV do
  if cur == ARGV[i] then
    redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[2], ARGV[3])
    return 1
  end
end
return 0
