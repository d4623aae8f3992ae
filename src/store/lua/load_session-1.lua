-- Loads a session, enforces idle and absolute expiry, joins the owner's roles and disabled
-- flag, and slides the expiry: the one round trip an authenticated request costs.
-- KEYS[1]  the session hash, {p}s:{sid_hash}
-- ARGV[1]  now (Unix seconds)            ARGV[2]  idle timeout (s)     ARGV[3]  absolute timeout (s)
-- ARGV[4]  touch interval (s)            ARGV[5]  user key prefix {p}u:
-- ARGV[6]  user index prefix {p}us:      ARGV[7]  sid_hash (the handle)
-- ARGV[8]  activity prefix {p}active:    ARGV[9]  activity bucket TTL (s)
-- Returns  the session's fields and values, flat, plus `_roles` and `_h`; false when the
--          session is unknown, expired, or its user is gone or disabled (then it is deleted).
-- The user, index and activity keys are derived from what the script reads, which only a
-- standalone Redis (or a primary with replicas) allows, until the cluster key schema
-- declares them.
local raw = redis.call('HGETALL', KEYS[1])
if #raw == 0 then return false end
local created, seen, uid = 0, 0, nil
for i = 1, #raw, 2 do
  local f = raw[i]
  if f == '_c' then created = tonumber(raw[i + 1])
  elseif f == '_s' then seen = tonumber(raw[i + 1])
  -- A JSON string of a validated user name ([a-z0-9._-]): no escapes, just the quotes.
  elseif f == 'uid' then uid = string.sub(raw[i + 1], 2, -2) end
end
local now = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])
local absolute = tonumber(ARGV[3])
local function drop()
  redis.call('DEL', KEYS[1])
  if uid then redis.call('ZREM', ARGV[6] .. uid, ARGV[7]) end
  return false
end
if now >= math.min(seen + idle, created + absolute) then return drop() end
local roles = ''
if uid then
  local user = redis.call('HMGET', ARGV[5] .. uid, 'roles', 'disabled')
  if not user[1] or user[2] == '1' then return drop() end
  roles = user[1]
end
if now - seen >= tonumber(ARGV[4]) then
  local expires = math.min(now + idle, created + absolute)
  redis.call('HSET', KEYS[1], '_s', ARGV[1])
  redis.call('EXPIREAT', KEYS[1], expires)
  if uid then
    redis.call('ZADD', ARGV[6] .. uid, expires, ARGV[7])
    local active = ARGV[8] .. math.floor(now / 60)
    redis.call('PFADD', active, ARGV[7])
    redis.call('EXPIRE', active, ARGV[9])
  end
  for i = 1, #raw, 2 do
    if raw[i] == '_s' then raw[i + 1] = ARGV[1] end
  end
  -- A read after the write: for a near-cache's tracking connection (CLIENT TRACKING NOLOOP),
  -- the write took the session out of Redis's tracking table without telling it; reading it
  -- again tracks it anew, so the touched session can be cached.
  redis.call('EXISTS', KEYS[1])
end
raw[#raw + 1] = '_roles'
raw[#raw + 1] = roles
raw[#raw + 1] = '_h'
raw[#raw + 1] = ARGV[7]
return raw
