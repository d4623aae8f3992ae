-- Deletes every session in a user's index but one; returns how many were live. Each leaves an
-- "ended" note for what it had left to live (its score in the index). In JWT mode
-- (ARGV[4] > 0) each family goes on the deny-list, and without a session to keep, every token
-- of the user issued up to now ("not before").
-- KEYS[1]  the user's index {p}us:{user}   KEYS[2]  the user's "not before" marker {p}nbf:{user}
-- ARGV[1]  session prefix {p}s:   ARGV[2]  handle to keep ('' for none)   ARGV[3]  now
-- ARGV[4]  deny marker TTL (s), 0 in session mode                         ARGV[5]  deny prefix
-- ARGV[6]  ending note prefix {p}gone:
-- Returns  the number of live sessions deleted
-- Session, deny and note keys are derived from the index, not declared: standalone Redis
-- only, until the cluster key schema declares them.
local live = 0
local marker = tonumber(ARGV[4])
local now = tonumber(ARGV[3])
local index = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #index, 2 do
  local h = index[i]
  if h ~= ARGV[2] then
    if marker > 0 then redis.call('SET', ARGV[5] .. h, '1', 'EX', marker) end
    local deleted = redis.call('DEL', ARGV[1] .. h)
    live = live + deleted
    local left = math.floor(tonumber(index[i + 1]) - now)
    if deleted == 1 and left > 0 then redis.call('SET', ARGV[6] .. h, 'e', 'EX', left) end
    redis.call('ZREM', KEYS[1], h)
  end
end
if ARGV[2] == '' and marker > 0 then redis.call('SET', KEYS[2], ARGV[3], 'EX', marker) end
return live
