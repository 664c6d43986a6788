-- Releases a lease only for its holder (compare-and-delete in one step, so a lease that expired and
-- was taken by another holder in between is never deleted).
-- KEYS[1]  the lease key
-- ARGV[1]  the holder's token
-- Returns 1 when released, 0 when the key is gone or held by another token.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
