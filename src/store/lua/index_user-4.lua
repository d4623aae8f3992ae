#!lua
-- Enters one existing user in the name-substring and order indexes (the start-up backfill for
-- users created before the indexes existed). Atomic per user, so a sign-in or a deletion
-- racing it leaves the indexes as the scripts that keep them would.
-- KEYS[1]  the user {p}u:{name}   KEYS[2]  the name-substring index {p}users:sfx
-- KEYS[3]  newest first {p}users:new     KEYS[4]  recently signed in {p}users:login
-- ARGV[1]  name   ARGV[2..] the name's suffix-index members
-- Returns  1, or 0 when there is no such user (deleted meanwhile)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local times = redis.call('HMGET', KEYS[1], 'created', 'last_login')
for i = 2, #ARGV do redis.call('ZADD', KEYS[2], 0, ARGV[i]) end
redis.call('ZADD', KEYS[3], 0, string.format('%010d:%s', 9999999999 - (tonumber(times[1]) or 0), ARGV[1]))
redis.call('ZADD', KEYS[4], 0, string.format('%010d:%s', 9999999999 - (tonumber(times[2]) or 0), ARGV[1]))
return 1
