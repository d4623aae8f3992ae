#!lua
-- Sets a user's roles; in JWT mode also their "not before" marker, so tokens carrying the old
-- roles are refused.
-- KEYS[1]  the user {p}{T}u   KEYS[2]  the user's "not before" marker {p}{T}nbf
-- ARGV[1]  name   ARGV[2]  roles, comma-separated   ARGV[3]  now   ARGV[4]  marker TTL (s), 0 = none
-- Returns  0 no such user, 1 done, 2 done and the user is now an enabled admin
if redis.call('HGET', KEYS[1], 'name') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'roles', ARGV[2])
if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4]) end
local roles = ',' .. ARGV[2] .. ','
if string.find(roles, ',admin,', 1, true) and redis.call('HGET', KEYS[1], 'disabled') ~= '1' then
  return 2
end
return 1
