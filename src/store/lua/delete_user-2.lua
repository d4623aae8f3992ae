#!lua
-- Deletes a user's record; in JWT mode sets their "not before" marker. Their sessions are
-- ended right after by revoke_all (a session whose user is gone is already refused by
-- load_session), and their entries in the user list after that; the audit trail stays.
-- KEYS[1]  the user {p}{T}u   KEYS[2]  the user's "not before" marker {p}{T}nbf
-- ARGV[1]  name   ARGV[2]  now   ARGV[3]  marker TTL (s), 0 = none
-- Returns  {created, last_login} of the deleted record, or false when there is no such user
if redis.call('HGET', KEYS[1], 'name') ~= ARGV[1] then return false end
local times = redis.call('HMGET', KEYS[1], 'created', 'last_login')
redis.call('DEL', KEYS[1])
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3]) end
return {times[1] or '0', times[2] or '0'}
