#!lua
-- `sessiond migrate`, on a standalone Redis: moves one user record from the key versions
-- before the cluster key schema used ({p}u:{name}) to its tagged key, adding `name`. Atomic
-- per user and idempotent: a record already moved is left as it is, and the old copy goes.
-- KEYS[1]  the old record {p}u:{name}   KEYS[2]  the new one {p}{T}u
-- ARGV[1]  name
-- Returns  1 moved, 0 nothing to move (or moved already), -1 the new key holds another
--          name with the same tag (the old record stays; the operator is told)
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local holder = redis.call('HGET', KEYS[2], 'name')
if holder and holder ~= ARGV[1] then return -1 end
if holder then
  redis.call('DEL', KEYS[1])
  return 0
end
local fields = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[2], 'name', ARGV[1], unpack(fields))
redis.call('DEL', KEYS[1])
return 1
