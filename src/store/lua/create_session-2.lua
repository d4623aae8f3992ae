#!lua
-- Stores a new session; an authenticated one also enters the owner's index (pruned of expired
-- entries). The global "all sessions" stream and the activity estimate are written after it,
-- by separate commands (they live in other slots): best-effort views, never the session.
-- KEYS[1]  the session hash {p}{T}s:{h}   KEYS[2]  the owner's index {p}{T}us
-- ARGV[1]  now   ARGV[2]  expires at   ARGV[3]  absolute timeout (s)   ARGV[4]  the handle
-- ARGV[5]  owner ('' before login)
-- ARGV[6..] field, value, field, value, ...
-- Returns  1
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIREAT', KEYS[1], ARGV[2])
if ARGV[5] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
end
return 1
