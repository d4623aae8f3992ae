#!lua
-- Deletes every session in a user's index but one; returns how many were live. Each leaves an
-- "ended" note for what it had left to live (its score in the index). In JWT mode
-- (ARGV[3] > 0) each family goes on the deny-list, and without a session to keep, every token
-- of the user issued up to now ("not before").
-- The caller read the index first and declares every session's keys (a cluster runs only
-- scripts whose keys are declared). A session that entered the index since is not declared:
-- the script then changes nothing and returns -1, and the caller reads the index again.
-- KEYS[1]  the user's index {p}{T}us   KEYS[2]  the user's "not before" marker {p}{T}nbf
-- KEYS[3i], KEYS[3i+1], KEYS[3i+2]  session i's hash, ending note and deny marker
-- ARGV[1]  handle to keep ('' for none)   ARGV[2]  now   ARGV[3]  deny marker TTL (s), 0 in
--          session mode                   ARGV[3+i]  session i's handle
-- Returns  the number of live sessions deleted, or -1 (index changed: read it again)
local declared = {}
for i = 4, #ARGV do declared[ARGV[i]] = (i - 3) * 3 end
local index = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #index, 2 do
  if index[i] ~= ARGV[1] and not declared[index[i]] then return -1 end
end
local live = 0
local marker = tonumber(ARGV[3])
local now = tonumber(ARGV[2])
for i = 1, #index, 2 do
  local h = index[i]
  if h ~= ARGV[1] then
    local k = declared[h]
    if marker > 0 then redis.call('SET', KEYS[k + 2], '1', 'EX', marker) end
    local deleted = redis.call('DEL', KEYS[k])
    live = live + deleted
    local left = math.floor(tonumber(index[i + 1]) - now)
    if deleted == 1 and left > 0 then redis.call('SET', KEYS[k + 1], 'e', 'EX', left) end
    redis.call('ZREM', KEYS[1], h)
  end
end
if ARGV[1] == '' and marker > 0 then redis.call('SET', KEYS[2], ARGV[2], 'EX', marker) end
return live
