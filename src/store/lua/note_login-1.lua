#!lua
-- Records a sign-in on an existing user (never creating a half user). The "recently signed
-- in" index moves after it, by separate commands (another slot).
-- KEYS[1]  the user {p}{T}u
-- ARGV[1]  name   ARGV[2]  now (Unix seconds)
-- Returns  the previous sign-in time (0 = never), or -1 when there is no such user
if redis.call('HGET', KEYS[1], 'name') ~= ARGV[1] then return -1 end
local before = tonumber(redis.call('HGET', KEYS[1], 'last_login')) or 0
redis.call('HSET', KEYS[1], 'last_login', ARGV[2])
return before
