#!lua
-- JWT mode: presents a refresh token to its family. The current token rotates (and the family
-- slides like a session); the previous one within the grace window is a race, refused;
-- anything else is reuse of a stolen or replayed token, and the family dies.
-- KEYS[1]  the family's hash {p}{T}s:{h}   KEYS[2]  its owner's record {p}{T}u
-- KEYS[3]  the owner's index {p}{T}us      KEYS[4]  its deny marker   KEYS[5]  its ending note
-- ARGV[1]  now   ARGV[2]  idle timeout (s)   ARGV[3]  absolute timeout (s)   ARGV[4]  the handle
-- ARGV[5]  hash of the presented token      ARGV[6]  hash of the new token
-- ARGV[7]  reuse grace (s)                  ARGV[8]  deny marker TTL (s)
-- Returns  {'rotated', uid, roles, auth_at, created} | {'raced'} | {'reused', uid} | {'gone'}
local raw = redis.call('HGETALL', KEYS[1])
if #raw == 0 then return {'gone'} end
local s = {}
for i = 1, #raw, 2 do s[raw[i]] = raw[i + 1] end
local now = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])
local absolute = tonumber(ARGV[3])
local created = tonumber(s['_c']) or 0
local seen = tonumber(s['_s']) or 0
if not s['uid'] then return {'gone'} end
local uid = cjson.decode(s['uid'])
local function drop()
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[4])
  if tonumber(ARGV[8]) > 0 then redis.call('SET', KEYS[4], '1', 'EX', ARGV[8]) end
end
if now >= math.min(seen + idle, created + absolute) then drop() return {'gone'} end
local user = redis.call('HMGET', KEYS[2], 'name', 'roles', 'disabled')
if user[1] ~= uid or not user[2] or user[3] == '1' then drop() return {'gone'} end
if s['rt'] == ARGV[5] then
  local expires = math.min(now + idle, created + absolute)
  redis.call('HSET', KEYS[1], 'rt', ARGV[6], 'prt', ARGV[5], 'rot', ARGV[1], '_s', ARGV[1])
  redis.call('EXPIREAT', KEYS[1], expires)
  redis.call('ZADD', KEYS[3], expires, ARGV[4])
  return {'rotated', uid, user[2], s['at'] or '0', tostring(created)}
end
if s['prt'] == ARGV[5] and now - (tonumber(s['rot']) or 0) <= tonumber(ARGV[7]) then
  return {'raced'}
end
drop()
local left = math.min(seen + idle, created + absolute) - now
if left > 0 then redis.call('SET', KEYS[5], 'e', 'EX', left) end
return {'reused', uid}
