-- Deletes every session in a user's index but one; returns how many were live. In JWT mode
-- (ARGV[4] > 0) each family goes on the deny-list, and without a session to keep, every token
-- of the user issued up to now ("not before").
-- KEYS[1]  the user's index {p}us:{user}   KEYS[2]  the user's "not before" marker {p}nbf:{user}
-- ARGV[1]  session prefix {p}s:   ARGV[2]  handle to keep ('' for none)   ARGV[3]  now
-- ARGV[4]  deny marker TTL (s), 0 in session mode                         ARGV[5]  deny prefix
-- Returns  the number of live sessions deleted
-- Session and deny keys are derived from the index, not declared: standalone Redis only,
-- until the cluster key schema declares them.
local live = 0
local marker = tonumber(ARGV[4])
for _, h in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if h ~= ARGV[2] then
    if marker > 0 then redis.call('SET', ARGV[5] .. h, '1', 'EX', marker) end
    live = live + redis.call('DEL', ARGV[1] .. h)
    redis.call('ZREM', KEYS[1], h)
  end
end
if ARGV[2] == '' and marker > 0 then redis.call('SET', KEYS[2], ARGV[3], 'EX', marker) end
return live
