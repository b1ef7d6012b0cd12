--[[
  Promote due delayed jobs, then claim up to n ready jobs for one worker.
  KEYS[1] wait     zset    KEYS[2] active   zset (score = lock deadline ms)
  KEYS[3] delayed  zset    KEYS[4] paused   zset
  KEYS[5] meta     hash    KEYS[6] marker   zset    KEYS[7] events stream
  ARGV[1] job key prefix
  ARGV[2] n: jobs wanted (0 = only promote)
  ARGV[3] token prefix, unique to this call (job i gets "<prefix>:<i>")
  ARGV[4] lock ms
  Returns: { next_due_ms or -1, now_ms, then per job 9 values:
             id, name, data, opts, attempts_made, stalled_count, priority, timestamp, token }
  A job whose record is missing (or is not a hash) is dropped from wait and skipped.
]]
local wait_key, active_key, delayed_key, paused_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local meta_key, marker_key, events_key = KEYS[5], KEYS[6], KEYS[7]
local prefix, n, token_prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local lock_ms = tonumber(ARGV[4])

local now = now_ms()
local paused = is_paused(meta_key)

-- 1. due delayed jobs become ready
local due = redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  local seq = next_seq(meta_key, #due)
  local target = paused and paused_key or wait_key
  local state = paused and 'paused' or 'waiting'
  for i, id in ipairs(due) do
    local job_key = prefix .. id
    -- a key that is not a hash holds no job (dropped); a record without prio runs at 0
    local prio = redis.pcall('HGET', job_key, 'prio')
    if type(prio) == 'table' then
      prio = false
    elseif not prio and redis.call('EXISTS', job_key) == 1 then
      prio = 0
    end
    if prio then
      redis.call('ZADD', target, ready_score(prio, seq + i - 1), id)
      redis.call('HSET', job_key, 'state', state)
    end
  end
  redis.call('ZREM', delayed_key, unpack(due))
  -- promoted by a call that claims none (an acknowledgement's): wake a worker to take them
  if n <= 0 and not paused then wake(marker_key) end
end

local out = {-1, now}
local nxt = redis.call('ZRANGE', delayed_key, 0, 0, 'WITHSCORES')
if nxt[2] then out[1] = tonumber(nxt[2]) end
if paused or n <= 0 then return out end

-- 2. claim
local popped = redis.call('ZPOPMIN', wait_key, n)
if #popped == 0 then return out end
local deadline = now + lock_ms
local zargs, ids = {}, {}
local k = 0
for i = 1, #popped, 2 do
  local id = popped[i]
  local job_key = prefix .. id
  local f = redis.pcall('HMGET', job_key, 'name', 'data', 'opts', 'atm', 'stc', 'prio', 'ts')
  -- a key that is not a hash holds no job (dropped); a record altered by hand (no name,
  -- say) is claimed all the same, and the worker fails it as corrupt
  if not f.err and (f[1] or redis.call('EXISTS', job_key) == 1) then
    k = k + 1
    local atm = (tonumber(f[4]) or 0) + 1
    local tok = token_prefix .. ':' .. k
    redis.call('HSET', job_key, 'state', 'active', 'tok', tok, 'pon', now, 'atm', atm)
    zargs[#zargs + 1] = deadline
    zargs[#zargs + 1] = id
    ids[#ids + 1] = id
    local o = #out
    out[o + 1] = id; out[o + 2] = f[1] or ''; out[o + 3] = f[2] or ''; out[o + 4] = f[3] or '{}'
    out[o + 5] = atm; out[o + 6] = f[5] or '0'; out[o + 7] = f[6] or '0'
    out[o + 8] = f[7] or '0'; out[o + 9] = tok
  end
end
if k > 0 then
  redis.call('ZADD', active_key, unpack(zargs))
  add_event(events_key, 'ev', 'active', 'ids', table.concat(ids, ','))
end
-- more left: wake another idle worker
if #popped / 2 == n and redis.call('ZCARD', wait_key) > 0 then wake(marker_key) end
return out
