#!lua
-- Sets the disabled flag under the same guard as set_roles.
-- KEYS[1]  the user   KEYS[2]  enabled admins   KEYS[3]  the user's "not before" marker
-- ARGV[1]  name   ARGV[2]  '1' to disable, '0' to enable   ARGV[3]  '1' to guard the last admin
-- ARGV[4]  now    ARGV[5]  marker TTL (s), 0 = none
-- Returns  1 done, 0 no such user, -1 refused (last admin)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local is_admin = redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1
if is_admin and ARGV[2] == '1' and ARGV[3] == '1' and redis.call('SCARD', KEYS[2]) <= 1 then
  return -1
end
redis.call('HSET', KEYS[1], 'disabled', ARGV[2])
if tonumber(ARGV[5]) > 0 then redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5]) end
local roles = ',' .. (redis.call('HGET', KEYS[1], 'roles') or '') .. ','
if ARGV[2] == '0' and string.find(roles, ',admin,', 1, true) then
  redis.call('SADD', KEYS[2], ARGV[1])
else
  redis.call('SREM', KEYS[2], ARGV[1])
end
return 1
