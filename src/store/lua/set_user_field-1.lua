#!lua
-- Sets one field of an existing user; never creates a half user.
-- KEYS[1]  the user {p}{T}u
-- ARGV[1]  name   ARGV[2]  field   ARGV[3]  value
-- Returns  1, or 0 when there is no such user
if redis.call('HGET', KEYS[1], 'name') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1
