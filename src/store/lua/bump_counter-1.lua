#!lua
-- One failure more on a throttle counter, whose window starts at its first failure (NX: later
-- failures do not push it back). One script per counter, so a counter never exists without
-- its expiry, and counters of one login (account, client IP) may live in different slots.
-- KEYS[1]  the counter {p}t:{scope}:{id}
-- ARGV[1]  the window, in seconds
-- Returns  the new count
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
return count
