#!lua
-- Sets roles and keeps the set of enabled admins; with ARGV[4] = '1', refuses to take the role
-- from the last enabled admin. Atomic, so two admins demoting each other at once cannot both
-- succeed.
-- KEYS[1]  the user   KEYS[2]  enabled admins   KEYS[3]  the user's "not before" marker
-- ARGV[1]  name   ARGV[2]  roles, comma-separated   ARGV[3]  '1' when they include admin
-- ARGV[4]  '1' to guard the last admin   ARGV[5]  now   ARGV[6]  marker TTL (s), 0 = none
-- Returns  1 done, 0 no such user, -1 refused (last admin)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local is_admin = redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1
if is_admin and ARGV[3] == '0' and ARGV[4] == '1' and redis.call('SCARD', KEYS[2]) <= 1 then
  return -1
end
redis.call('HSET', KEYS[1], 'roles', ARGV[2])
if tonumber(ARGV[6]) > 0 then redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[6]) end
if ARGV[3] == '1' and redis.call('HGET', KEYS[1], 'disabled') ~= '1' then
  redis.call('SADD', KEYS[2], ARGV[1])
else
  redis.call('SREM', KEYS[2], ARGV[1])
end
return 1
