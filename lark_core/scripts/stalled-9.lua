--[[
  Sweep for stalled jobs: active jobs whose lock deadline has passed (worker died or froze).
  Guarded by SET NX PX so one worker sweeps a queue at a time.
  KEYS[1] active  zset   KEYS[2] wait   zset   KEYS[3] paused  zset
  KEYS[4] failed  zset   KEYS[5] meta   hash   KEYS[6] events  stream
  KEYS[7] marker  zset   KEYS[8] sweep guard string   KEYS[9] metrics hash
  ARGV[1] job key prefix  ARGV[2] max stalls  ARGV[3] guard ms (0 = no guard)  ARGV[4] limit
  Returns: { recovered ids..., '|', failed ids... } ; {} when another worker holds the guard.
]]
local active_key, wait_key, paused_key, failed_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local meta_key, events_key, marker_key, guard_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local metrics_key = KEYS[9]
local prefix, max_stalls = ARGV[1], tonumber(ARGV[2])
local guard_ms, limit = tonumber(ARGV[3]), tonumber(ARGV[4])

if guard_ms > 0 and not redis.call('SET', guard_key, '1', 'NX', 'PX', guard_ms) then return {} end
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', active_key, '-inf', now, 'LIMIT', 0, limit)
local recovered, failed = {}, {}
local paused = is_paused(meta_key)
for _, id in ipairs(expired) do
  local job_key = prefix .. id
  redis.call('ZREM', active_key, id)
  if redis.call('EXISTS', job_key) == 1 then
    local stc = redis.call('HINCRBY', job_key, 'stc', 1)
    if stc > max_stalls then
      local reason = 'job stalled more than max_stalls (' .. max_stalls .. ') times: its worker died or stopped renewing the lock'
      redis.call('HSET', job_key, 'state', 'failed', 'tok', '', 'fon', now, 'fr', reason, 'st', '')
      redis.call('ZADD', failed_key, now, id)
      failed[#failed + 1] = id
      add_event(events_key, 'ev', 'failed', 'id', id, 'reason', reason)
    else
      local prio = redis.call('HGET', job_key, 'prio')
      -- a stall does not use up an attempt (the try is counted again when it is re-claimed)
      if (tonumber(redis.call('HGET', job_key, 'atm')) or 0) > 0 then
        redis.call('HINCRBY', job_key, 'atm', -1)
      end
      redis.call('HSET', job_key, 'state', paused and 'paused' or 'waiting', 'tok', '')
      redis.call('ZADD', paused and paused_key or wait_key, ready_score(prio, next_seq(meta_key, 1)), id)
      recovered[#recovered + 1] = id
    end
  end
end
if #recovered > 0 then
  add_event(events_key, 'ev', 'stalled', 'ids', table.concat(recovered, ','))
  if not paused then wake(marker_key) end
end
if #failed > 0 then
  redis.call('HINCRBY', metrics_key, 'f:' .. math.floor(now / 60000) * 60000, #failed)
end
local out = recovered
out[#out + 1] = '|'
for _, id in ipairs(failed) do out[#out + 1] = id end
return out
