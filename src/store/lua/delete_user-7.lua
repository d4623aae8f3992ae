#!lua
-- Deletes a user's record under the same last-admin guard as set_disabled, and their entries
-- in every user index. Their sessions are ended right after by revoke_all (a session whose
-- user is gone is already refused by load_session); the audit trail stays.
-- KEYS[1]  the user {p}u:{name}   KEYS[2]  enabled admins {p}admins   KEYS[3]  all users {p}users
-- KEYS[4]  the user's "not before" marker {p}nbf:{name}   KEYS[5]  the name-substring index
-- KEYS[6]  newest first {p}users:new     KEYS[7]  recently signed in {p}users:login
-- ARGV[1]  name   ARGV[2]  '1' to guard the last admin   ARGV[3]  now
-- ARGV[4]  marker TTL (s), 0 = none     ARGV[5..] the name's suffix-index members
-- Returns  1 done, 0 no such user, -1 refused (last admin)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] == '1' and redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1
    and redis.call('SCARD', KEYS[2]) <= 1 then
  return -1
end
local times = redis.call('HMGET', KEYS[1], 'created', 'last_login')
local function member(at) return string.format('%010d:%s', 9999999999 - (tonumber(at) or 0), ARGV[1]) end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
for i = 5, #ARGV do redis.call('ZREM', KEYS[5], ARGV[i]) end
redis.call('ZREM', KEYS[6], member(times[1]))
redis.call('ZREM', KEYS[7], member(times[2]))
if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[4]) end
return 1
