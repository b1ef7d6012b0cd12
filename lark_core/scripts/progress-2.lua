--[[
  Record a running job's progress, fenced by its lock token.
  KEYS[1] job hash   KEYS[2] events stream
  ARGV[1] token  ARGV[2] progress JSON  ARGV[3] id
  Returns: 1 written, 0 the lock is no longer this worker's.
]]
if redis.call('HGET', KEYS[1], 'tok') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'prog', ARGV[2])
add_event(KEYS[2], 'ev', 'progress', 'id', ARGV[3], 'progress', ARGV[2])
return 1
