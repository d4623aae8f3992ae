#!lua
-- Sets one field of an existing user; never creates a half user.
-- KEYS[1]  the user
-- ARGV[1]  field   ARGV[2]  value
-- Returns  1, or 0 when there is no such user
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
