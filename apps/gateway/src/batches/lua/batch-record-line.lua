-- Records one batch line's outcome once (any gateway replica may see the same completion event).
-- KEYS[1]  the batch hash (<prefix>batch:<id>)
-- KEYS[2]  the batch's done hash (<prefix>batch:<id>:done), field = line index
-- ARGV[1]  line index (0-based request index)
-- ARGV[2]  the recorded value: 'o<result reference>' | 'f<failed reason>' | 'x<error code>' | 'e<line error JSON>'
-- ARGV[3]  counter field of the batch hash to increment ('completed' | 'failed'), '' for none
-- ARGV[4]  now, ms since epoch (stored as last_event_at)
-- Returns -1 unknown batch, -2 already recorded, 0 recorded, 1 recorded and every line is done.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return -2 end
if ARGV[3] ~= '' then redis.call('HINCRBY', KEYS[1], ARGV[3], 1) end
redis.call('HSET', KEYS[1], 'last_event_at', ARGV[4])
if redis.call('HLEN', KEYS[2]) >= tonumber(redis.call('HGET', KEYS[1], 'total')) then return 1 end
return 0
