--[[
  Make a delayed job ready now.
  KEYS[1] delayed  KEYS[2] wait  KEYS[3] paused  KEYS[4] meta  KEYS[5] events  KEYS[6] marker
  KEYS[7] job hash
  ARGV[1] id
  Returns: 1 promoted, -1 no such job, -2 not delayed.
]]
local job_key, id = KEYS[7], ARGV[1]
if redis.call('EXISTS', job_key) == 0 then return -1 end
if redis.call('ZREM', KEYS[1], id) == 0 then return -2 end
local paused = is_paused(KEYS[4])
local prio = redis.call('HGET', job_key, 'prio')
redis.call('HSET', job_key, 'state', paused and 'paused' or 'waiting')
redis.call('HDEL', job_key, 'due')
redis.call('ZADD', paused and KEYS[3] or KEYS[2], ready_score(prio, next_seq(KEYS[4], 1)), id)
add_event(KEYS[5], 'ev', 'promoted', 'id', id)
if not paused then wake(KEYS[6]) end
return 1
