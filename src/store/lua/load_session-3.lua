#!lua
-- Loads a session, enforces idle and absolute expiry, joins the owner's roles and disabled
-- flag, and slides the expiry: the one round trip an authenticated request costs. Every key
-- is declared and carries the session's tag, so the script runs on one node of a cluster.
-- KEYS[1]  the session hash {p}{T}s:{h}   KEYS[2]  its owner's record {p}{T}u
-- KEYS[3]  the owner's index {p}{T}us
-- ARGV[1]  now (Unix seconds)   ARGV[2]  idle timeout (s)   ARGV[3]  absolute timeout (s)
-- ARGV[4]  touch interval (s)   ARGV[5]  the handle T.h
-- ARGV[6]  '1' when run as the read-only variant (`#!lua flags=no-writes`, for a master that
--          refuses writes: NOREPLICAS): the same checks, nothing deleted, the expiry not slid
-- Returns  the session's fields and values, flat, plus `_roles`, `_h` and, when this load
--          slid the expiry, `_t` (the caller then counts the session as active); false when
--          the session is unknown, expired, or its user is gone, disabled or not the one the
--          record names (then it is deleted).
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
local readonly = ARGV[6] == '1'
local function drop()
  if readonly then return false end
  redis.call('DEL', KEYS[1])
  if uid then redis.call('ZREM', KEYS[3], ARGV[5]) end
  return false
end
if now >= math.min(seen + idle, created + absolute) then return drop() end
local roles = ''
if uid then
  local user = redis.call('HMGET', KEYS[2], 'name', 'roles', 'disabled')
  if user[1] ~= uid or not user[2] or user[3] == '1' then return drop() end
  roles = user[2]
end
local touched = false
if not readonly and now - seen >= tonumber(ARGV[4]) then
  local expires = math.min(now + idle, created + absolute)
  redis.call('HSET', KEYS[1], '_s', ARGV[1])
  redis.call('EXPIREAT', KEYS[1], expires)
  if uid then redis.call('ZADD', KEYS[3], expires, ARGV[5]) end
  for i = 1, #raw, 2 do
    if raw[i] == '_s' then raw[i + 1] = ARGV[1] end
  end
  -- A read after the write: for a near-cache's tracking connection (CLIENT TRACKING NOLOOP),
  -- the write took the session out of Redis's tracking table without telling it; reading it
  -- again tracks it anew, so the touched session can be cached.
  redis.call('EXISTS', KEYS[1])
  touched = uid ~= nil
end
raw[#raw + 1] = '_roles'
raw[#raw + 1] = roles
raw[#raw + 1] = '_h'
raw[#raw + 1] = ARGV[5]
if touched then
  raw[#raw + 1] = '_t'
  raw[#raw + 1] = '1'
end
return raw
