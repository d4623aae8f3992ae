-- Deletes a session and its entry in the owner's index; in JWT mode (ARGV[4] > 0) the family
-- goes on the deny-list, so every access token minted for it is refused. An authenticated
-- session leaves a "signed out" note for what it had left to live, so a copy of its cookie
-- coming back is told why it no longer works.
-- KEYS[1]  the session hash   KEYS[2]  its ending note {p}gone:{sid_hash}
-- ARGV[1]  user index prefix {p}us:   ARGV[2]  sid_hash   ARGV[3]  deny prefix {p}deny:
-- ARGV[4]  deny marker TTL (s), 0 in session mode
-- Returns  1
-- The index and deny keys are derived, not declared: standalone Redis only, until the
-- cluster key schema declares them.
local uid = redis.call('HGET', KEYS[1], 'uid')
local left = redis.call('TTL', KEYS[1])
redis.call('DEL', KEYS[1])
if uid then
  redis.call('ZREM', ARGV[1] .. cjson.decode(uid), ARGV[2])
  if tonumber(ARGV[4]) > 0 then redis.call('SET', ARGV[3] .. ARGV[2], '1', 'EX', ARGV[4]) end
  if left > 0 then redis.call('SET', KEYS[2], 'o', 'EX', left) end
end
return 1
