#!lua
-- Creates a user's record unless its key is taken (by this name, or by another name with the
-- same tag: see keys.rs). The user-list indexes and the admin set are written after it by
-- separate commands (other slots).
-- KEYS[1]  the user {p}{T}u
-- ARGV[1]  name   ARGV[2]  PHC string   ARGV[3]  roles, comma-separated   ARGV[4]  disabled '0'/'1'
-- ARGV[5]  created (Unix seconds)
-- Returns  1 when created, 0 when taken
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'phc', ARGV[2], 'roles', ARGV[3],
  'disabled', ARGV[4], 'created', ARGV[5])
return 1
