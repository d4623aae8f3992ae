#!lua
-- Deletes one session, only if it is in this user's index: a handle alone proves nothing. The
-- session leaves an "ended" note for what it had left to live (its score in the index).
-- KEYS[1]  the user's index {p}{T}us   KEYS[2]  the session hash   KEYS[3]  its ending note
-- KEYS[4]  its deny marker
-- ARGV[1]  the handle   ARGV[2]  deny marker TTL (s)   ARGV[3]  now
-- Returns  1 when a live session was deleted, else 0
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expires then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[4], '1', 'EX', ARGV[2]) end
local deleted = redis.call('DEL', KEYS[2])
local left = math.floor(tonumber(expires) - tonumber(ARGV[3]))
if deleted == 1 and left > 0 then redis.call('SET', KEYS[3], 'e', 'EX', left) end
return deleted
