--[[
  Put a worker's in-flight jobs back to the front of their priority (shutdown past grace).
  The try is not counted: attempts_made goes back by one.
  KEYS[1] active zset  KEYS[2] wait zset  KEYS[3] paused zset  KEYS[4] meta hash
  KEYS[5] events stream  KEYS[6] marker zset
  ARGV[1] job key prefix   then pairs: id, token (in the order they should run)
  Returns: number of jobs put back.
]]
local active_key, wait_key, paused_key, meta_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local events_key, marker_key = KEYS[5], KEYS[6]
local prefix = ARGV[1]
local paused = is_paused(meta_key)
local back = {}
local n = math.floor((#ARGV - 1) / 2)
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local job_key = prefix .. id
  if redis.call('HGET', job_key, 'tok') == token and redis.call('ZREM', active_key, id) == 1 then
    local prio = redis.call('HGET', job_key, 'prio')
    redis.call('HINCRBY', job_key, 'atm', -1)
    redis.call('HSET', job_key, 'state', paused and 'paused' or 'waiting', 'tok', '')
    -- ahead of every job of its priority, keeping the order the jobs were given in
    local ahead = n - (i / 2) + 1
    redis.call('ZADD', paused and paused_key or wait_key, ready_score(prio, 0) - ahead, id)
    back[#back + 1] = id
  end
end
if #back > 0 then
  add_event(events_key, 'ev', 'requeued', 'ids', table.concat(back, ','))
  if not paused then wake(marker_key) end
end
return #back
