#!lua
-- Deletes a session and its entry in the owner's index; in JWT mode (ARGV[2] > 0) the family
-- goes on the deny-list, so every access token minted for it is refused. An authenticated
-- session leaves a "signed out" note for what it had left to live, so a copy of its cookie
-- coming back is told why it no longer works.
-- KEYS[1]  the session hash {p}{T}s:{h}   KEYS[2]  its ending note {p}{T}g:{h}
-- KEYS[3]  the owner's index {p}{T}us     KEYS[4]  its deny marker {p}{T}d:{h}
-- ARGV[1]  the handle   ARGV[2]  deny marker TTL (s), 0 in session mode
-- Returns  1
local uid = redis.call('HGET', KEYS[1], 'uid')
local left = redis.call('TTL', KEYS[1])
redis.call('DEL', KEYS[1])
if uid then
  redis.call('ZREM', KEYS[3], ARGV[1])
  if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[4], '1', 'EX', ARGV[2]) end
  if left > 0 then redis.call('SET', KEYS[2], 'o', 'EX', left) end
end
return 1
