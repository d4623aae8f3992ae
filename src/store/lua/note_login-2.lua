#!lua
-- Records a sign-in on an existing user (never creating a half user) and moves them to the
-- front of the "recently signed in" index.
-- KEYS[1]  the user {p}u:{name}   KEYS[2]  recently signed in {p}users:login
-- ARGV[1]  name   ARGV[2]  now (Unix seconds)
-- Returns  1, or 0 when there is no such user
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local before = tonumber(redis.call('HGET', KEYS[1], 'last_login')) or 0
redis.call('ZREM', KEYS[2], string.format('%010d:%s', 9999999999 - before, ARGV[1]))
redis.call('HSET', KEYS[1], 'last_login', ARGV[2])
redis.call('ZADD', KEYS[2], 0, string.format('%010d:%s', 9999999999 - tonumber(ARGV[2]), ARGV[1]))
return 1
