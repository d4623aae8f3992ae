#!lua
-- The last-admin guard, before a change that may take a user out of the enabled admins
-- (demotion, disabling, deletion): takes the name out of the set, unless (with ARGV[2] = '1')
-- it is the last one. Atomic on the set, so two admins demoting each other at once cannot
-- both pass. The record changes after it (another slot); the set is then written again from
-- what the record says (admin_sync), so a change that fails halfway leaves the guard stricter,
-- never looser.
-- KEYS[1]  enabled admins {p}admins
-- ARGV[1]  name   ARGV[2]  '1' to guard the last admin
-- Returns  1 released (or was not an admin), -1 refused (last admin)
if ARGV[2] == '1' and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1
    and redis.call('SCARD', KEYS[1]) <= 1 then
  return -1
end
redis.call('SREM', KEYS[1], ARGV[1])
return 1
