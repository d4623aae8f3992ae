#!lua
-- Stores a new session; an authenticated one also enters the owner's index (pruned of
-- expired entries), the global stream (trimmed by server time to the absolute timeout) and
-- this minute's activity estimate.
-- KEYS[1]  the session hash          KEYS[2]  the owner's index {p}us:{user}
-- KEYS[3]  the sessions stream       KEYS[4]  this minute's activity HyperLogLog
-- ARGV[1]  now    ARGV[2]  expires at   ARGV[3]  absolute timeout (s)   ARGV[4]  sid_hash
-- ARGV[5]  owner ('' before login)      ARGV[6]  activity TTL (s)
-- ARGV[7..] field, value, field, value, ...
-- Returns  1
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIREAT', KEYS[1], ARGV[2])
if ARGV[5] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  local t = redis.call('TIME')
  local oldest = (tonumber(t[1]) - tonumber(ARGV[3])) * 1000
  redis.call('XADD', KEYS[3], 'MINID', '~', oldest, '*', 'h', ARGV[4])
  redis.call('PFADD', KEYS[4], ARGV[4])
  redis.call('EXPIRE', KEYS[4], ARGV[6])
end
return 1
