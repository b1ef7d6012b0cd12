--[[
  Retry failed (or completed) jobs: back of waiting (or paused), fresh attempts.
  KEYS[1] failed or completed zset (the state retried from)
  KEYS[2] wait zset  KEYS[3] paused zset  KEYS[4] meta hash  KEYS[5] events stream
  KEYS[6] marker zset  KEYS[7] completed zset  KEYS[8] failed zset
  ARGV[1] job key prefix  ARGV[2] logs key prefix  ARGV[3] log line to append
  ARGV[4] mode: 'one' (then ARGV[5] = id) | 'all' (then ARGV[5] = batch limit)
  Returns: 'one': 1 retried, -1 no such job, -2 not failed/completed (then ARGV[6]... unused);
           'all': number retried in this batch (call again until 0).
]]
local from_key, wait_key, paused_key, meta_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local events_key, marker_key, completed_key, failed_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local prefix, logs_prefix, line, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local paused = is_paused(meta_key)
local function retry(id)
  local job_key = prefix .. id
  local prio = redis.call('HGET', job_key, 'prio')
  redis.call('ZREM', completed_key, id)
  redis.call('ZREM', failed_key, id)
  redis.call('HDEL', job_key, 'fr', 'st', 'rv', 'prog', 'pon', 'fon', 'due', 'tok')
  redis.call('HSET', job_key, 'atm', 0, 'stc', 0, 'state', paused and 'paused' or 'waiting')
  redis.call('ZADD', paused and paused_key or wait_key, ready_score(prio, next_seq(meta_key, 1)), id)
  redis.call('RPUSH', logs_prefix .. id, line)
  redis.call('LTRIM', logs_prefix .. id, -1000, -1)
end

local ids = {}
if mode == 'one' then
  local id = ARGV[5]
  if redis.call('EXISTS', prefix .. id) == 0 then return -1 end
  if not (redis.call('ZSCORE', failed_key, id) or redis.call('ZSCORE', completed_key, id)) then
    return -2
  end
  ids = {id}
else
  ids = redis.call('ZRANGE', from_key, 0, tonumber(ARGV[5]) - 1)
end
for _, id in ipairs(ids) do
  if redis.call('EXISTS', prefix .. id) == 1 then retry(id) else redis.call('ZREM', from_key, id) end
end
if #ids > 0 then
  add_event(events_key, 'ev', 'retried', 'ids', table.concat(ids, ','), 'manual', '1')
  if not paused then wake(marker_key) end
end
return #ids
