-- Deletes one session, only if it is in this user's index: a handle alone proves nothing. The
-- session leaves an "ended" note for what it had left to live (its score in the index).
-- KEYS[1]  the user's index   KEYS[2]  the session hash   KEYS[3]  its ending note {p}gone:{h}
-- ARGV[1]  the handle   ARGV[2]  deny prefix {p}deny:   ARGV[3]  deny marker TTL (s)
-- ARGV[4]  now
-- Returns  1 when a live session was deleted, else 0
-- The deny key is derived, not declared: standalone Redis only, until the cluster key
-- schema declares it.
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expires then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(ARGV[3]) > 0 then redis.call('SET', ARGV[2] .. ARGV[1], '1', 'EX', ARGV[3]) end
local deleted = redis.call('DEL', KEYS[2])
local left = math.floor(tonumber(expires) - tonumber(ARGV[4]))
if deleted == 1 and left > 0 then redis.call('SET', KEYS[3], 'e', 'EX', left) end
return deleted
