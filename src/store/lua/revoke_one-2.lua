-- Deletes one session, only if it is in this user's index: a handle alone proves nothing.
-- KEYS[1]  the user's index   KEYS[2]  the session hash
-- ARGV[1]  the handle   ARGV[2]  deny prefix {p}deny:   ARGV[3]  deny marker TTL (s)
-- Returns  1 when a live session was deleted, else 0
-- The deny key is derived, not declared: standalone Redis only, until the cluster key
-- schema declares it.
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(ARGV[3]) > 0 then redis.call('SET', ARGV[2] .. ARGV[1], '1', 'EX', ARGV[3]) end
return redis.call('DEL', KEYS[2])
