-- JWT mode: presents a refresh token to its family. The current token rotates (and the family
-- slides like a session); the previous one within the grace window is a race, refused;
-- anything else is reuse of a stolen or replayed token, and the family dies.
-- KEYS[1]   the family's hash (stored like a session)
-- ARGV[1]   now           ARGV[2]  idle timeout (s)      ARGV[3]  absolute timeout (s)
-- ARGV[4]   user key prefix {p}u:   ARGV[5]  user index prefix {p}us:   ARGV[6]  family handle
-- ARGV[7]   hash of the presented token                 ARGV[8]  hash of the new token
-- ARGV[9]   reuse grace (s)         ARGV[10] activity prefix {p}active: ARGV[11] activity TTL (s)
-- ARGV[12]  deny prefix {p}deny:    ARGV[13] deny marker TTL (s)
-- ARGV[14]  ending note prefix {p}gone: (a reused token ends the family: say so at login)
-- Returns   {'rotated', uid, roles, auth_at, created} | {'raced'} | {'reused', uid} | {'gone'}
-- User, index, activity, deny and note keys are derived, not declared: standalone Redis only,
-- until the cluster key schema declares them.
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
  redis.call('ZREM', ARGV[5] .. uid, ARGV[6])
  if tonumber(ARGV[13]) > 0 then redis.call('SET', ARGV[12] .. ARGV[6], '1', 'EX', ARGV[13]) end
end
if now >= math.min(seen + idle, created + absolute) then drop() return {'gone'} end
local user = redis.call('HMGET', ARGV[4] .. uid, 'roles', 'disabled')
if not user[1] or user[2] == '1' then drop() return {'gone'} end
if s['rt'] == ARGV[7] then
  local expires = math.min(now + idle, created + absolute)
  redis.call('HSET', KEYS[1], 'rt', ARGV[8], 'prt', ARGV[7], 'rot', ARGV[1], '_s', ARGV[1])
  redis.call('EXPIREAT', KEYS[1], expires)
  redis.call('ZADD', ARGV[5] .. uid, expires, ARGV[6])
  local active = ARGV[10] .. math.floor(now / 60)
  redis.call('PFADD', active, ARGV[6])
  redis.call('EXPIRE', active, ARGV[11])
  return {'rotated', uid, user[1], s['at'] or '0', tostring(created)}
end
if s['prt'] == ARGV[7] and now - (tonumber(s['rot']) or 0) <= tonumber(ARGV[9]) then
  return {'raced'}
end
drop()
local left = math.min(seen + idle, created + absolute) - now
if left > 0 then redis.call('SET', ARGV[14] .. ARGV[6], 'e', 'EX', left) end
return {'reused', uid}
