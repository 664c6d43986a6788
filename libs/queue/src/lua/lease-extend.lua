-- Extends a lease only for its holder.
-- KEYS[1]  the lease key
-- ARGV[1]  the holder's token (written by SET key token PX ttl NX when it was acquired)
-- ARGV[2]  the new time to live, in milliseconds (a positive integer)
-- Returns 1 when extended, 0 when the key is gone or held by another token.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
