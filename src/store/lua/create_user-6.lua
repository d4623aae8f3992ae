#!lua
-- Creates a user unless the name is taken, and enters the name in every user index.
-- KEYS[1]  the user {p}u:{name}   KEYS[2]  all users {p}users   KEYS[3]  enabled admins {p}admins
-- KEYS[4]  the name-substring index {p}users:sfx
-- KEYS[5]  newest first {p}users:new     KEYS[6]  recently signed in {p}users:login
-- ARGV[1]  name   ARGV[2]  PHC string   ARGV[3]  roles, comma-separated   ARGV[4]  disabled '0'/'1'
-- ARGV[5]  created (Unix seconds)       ARGV[6]  '1' when the roles include admin
-- ARGV[7..] the name's suffix-index members (`suffix:name`, one per suffix)
-- Returns  1 when created, 0 when the name is taken
-- Order-index members are `{9999999999 - time, 10 digits}:name` (names.rs), time 0 = never.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'phc', ARGV[2], 'roles', ARGV[3], 'disabled', ARGV[4], 'created', ARGV[5])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
for i = 7, #ARGV do redis.call('ZADD', KEYS[4], 0, ARGV[i]) end
redis.call('ZADD', KEYS[5], 0, string.format('%010d:%s', 9999999999 - tonumber(ARGV[5]), ARGV[1]))
redis.call('ZADD', KEYS[6], 0, string.format('%010d:%s', 9999999999, ARGV[1]))
if ARGV[6] == '1' and ARGV[4] == '0' then redis.call('SADD', KEYS[3], ARGV[1]) end
return 1
