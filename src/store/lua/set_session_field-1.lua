#!lua
-- Sets one field of a live session, never creating one.
-- KEYS[1]  the session hash
-- ARGV[1]  field   ARGV[2]  value
-- Returns  1, or 0 when the session is gone
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
