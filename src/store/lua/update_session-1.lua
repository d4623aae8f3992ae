#!lua
-- Replaces the application fields of a live session. A missing session stays missing, so a
-- request racing a logout cannot resurrect it; `uid` and store-managed `_` fields are fixed.
-- KEYS[1]  the session hash
-- ARGV     field, value, field, value, ...
-- Returns  1, or 0 when the session is gone
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local keep = {}
local args = {}
for i = 1, #ARGV, 2 do
  local f = ARGV[i]
  if string.sub(f, 1, 1) ~= '_' and f ~= 'uid' then
    keep[f] = true
    args[#args + 1] = f
    args[#args + 1] = ARGV[i + 1]
  end
end
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if not keep[f] and string.sub(f, 1, 1) ~= '_' and f ~= 'uid' then
    redis.call('HDEL', KEYS[1], f)
  end
end
if #args > 0 then redis.call('HSET', KEYS[1], unpack(args)) end
return 1
