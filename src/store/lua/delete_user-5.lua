#!lua
-- Deletes a user's record under the same last-admin guard as set_disabled. Their sessions are
-- ended right after by revoke_all (a session whose user is gone is already refused by
-- load_session); the audit trail stays.
-- KEYS[1]  the user {p}u:{name}   KEYS[2]  enabled admins {p}admins   KEYS[3]  all users {p}users
-- KEYS[4]  the user's "not before" marker {p}nbf:{name}   KEYS[5]  the name-substring index
-- ARGV[1]  name   ARGV[2]  '1' to guard the last admin   ARGV[3]  now
-- ARGV[4]  marker TTL (s), 0 = none     ARGV[5..] the name's suffix-index members
-- Returns  1 done, 0 no such user, -1 refused (last admin)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] == '1' and redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1
    and redis.call('SCARD', KEYS[2]) <= 1 then
  return -1
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
for i = 5, #ARGV do redis.call('ZREM', KEYS[5], ARGV[i]) end
if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[4]) end
return 1
