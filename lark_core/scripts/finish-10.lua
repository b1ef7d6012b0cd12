--[[
  Acknowledge a batch of finished tries, each fenced by its lock token.
  KEYS[1] active    zset   KEYS[2] wait     zset   KEYS[3] delayed  zset
  KEYS[4] completed zset   KEYS[5] failed   zset   KEYS[6] paused   zset
  KEYS[7] meta      hash   KEYS[8] events   stream KEYS[9] metrics  hash
  KEYS[10] marker   zset
  ARGV[1] job key prefix   ARGV[2] logs key prefix   ARGV[3] number of entries n
  then n groups of 9:
    id, token, outcome ('c' completed | 'f' failed for good | 'r' retry),
    value (return value JSON for 'c', reason for 'f'/'r'), stacktrace,
    retry delay ms ('r'), keep count (-1 = no limit), keep age ms (-1 = no limit),
    max attempts (as the worker resolved them; stored so readers see the job's policy)
  A job is acknowledged only while its token matches: the claim sets the token and every
  way out of active changes it (the stalled sweep and requeue clear it; this script marks
  it 'd:<token>'), so a matching token means "active under this claim". Replaying an
  acknowledgement already applied (a write retried after a reconnect) is a no-op, and so
  is acknowledging a job whose record is gone.
  Returns: array of ids whose lock was lost (nothing was written for them).
]]
local active_key, wait_key, delayed_key = KEYS[1], KEYS[2], KEYS[3]
local completed_key, failed_key, paused_key = KEYS[4], KEYS[5], KEYS[6]
local meta_key, events_key, metrics_key, marker_key = KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local prefix, logs_prefix, n = ARGV[1], ARGV[2], tonumber(ARGV[3])

local now = now_ms()
local minute = math.floor(now / 60000) * 60000
local lost, done, completed_ids, to_del, requeued = {}, {}, {}, {}, 0
local n_completed, n_failed = 0, 0
local trims = {}
local paused = nil

local function keep(set_key, id, count, age)
  redis.call('ZADD', set_key, now, id)
  if count >= 0 or age >= 0 then trims[set_key .. '|' .. count .. '|' .. age] = {set_key, count, age} end
end

local function trim(set_key, count, age)
  local victims = {}
  if age >= 0 then
    victims = redis.call('ZRANGEBYSCORE', set_key, '-inf', '(' .. (now - age), 'LIMIT', 0, 1000)
  end
  if count >= 0 then
    local extra = redis.call('ZCARD', set_key) - count
    if extra > 0 then
      local old = redis.call('ZRANGE', set_key, 0, math.min(extra, 1000) - 1)
      for _, id in ipairs(old) do victims[#victims + 1] = id end
    end
  end
  for _, id in ipairs(victims) do
    redis.call('ZREM', set_key, id)
    redis.call('DEL', prefix .. id, logs_prefix .. id)
  end
end

for i = 0, n - 1 do
  local b = 4 + i * 9
  local id, token, outcome, value = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local stack, delay = ARGV[b + 4], tonumber(ARGV[b + 5])
  local count, age = tonumber(ARGV[b + 6]), tonumber(ARGV[b + 7])
  local matm = ARGV[b + 8]
  local job_key = prefix .. id
  local tok = redis.call('HGET', job_key, 'tok')
  if tok ~= token then
    if tok and tok ~= 'd:' .. token then lost[#lost + 1] = id end
  else
    done[#done + 1] = id
    if outcome == 'c' then
      n_completed = n_completed + 1
      completed_ids[n_completed] = id
      if count == 0 or age == 0 then
        to_del[#to_del + 1] = job_key; to_del[#to_del + 1] = logs_prefix .. id
      else
        redis.call('HSET', job_key, 'state', 'completed', 'fon', now, 'rv', value, 'tok', 'd:' .. token,
          'matm', matm)
        keep(completed_key, id, count, age)
      end
    elseif outcome == 'f' then
      n_failed = n_failed + 1
      add_event(events_key, 'ev', 'failed', 'id', id, 'reason', value)
      if count == 0 or age == 0 then
        to_del[#to_del + 1] = job_key; to_del[#to_del + 1] = logs_prefix .. id
      else
        redis.call('HSET', job_key, 'state', 'failed', 'fon', now, 'fr', value, 'st', stack, 'tok', 'd:' .. token,
          'matm', matm)
        keep(failed_key, id, count, age)
      end
    else
      add_event(events_key, 'ev', 'retried', 'id', id, 'reason', value, 'delay', delay)
      if delay > 0 then
        redis.call('HSET', job_key, 'state', 'delayed', 'due', now + delay, 'fr', value, 'st', stack,
          'tok', 'd:' .. token, 'matm', matm)
        redis.call('ZADD', delayed_key, now + delay, id)
      else
        if paused == nil then paused = is_paused(meta_key) end
        local prio = redis.call('HGET', job_key, 'prio')
        local state = paused and 'paused' or 'waiting'
        redis.call('HSET', job_key, 'state', state, 'fr', value, 'st', stack, 'tok', 'd:' .. token,
          'matm', matm)
        redis.call('ZADD', paused and paused_key or wait_key, ready_score(prio, next_seq(meta_key, 1)), id)
        requeued = requeued + 1
      end
    end
  end
end

if #done > 0 then redis.call('ZREM', active_key, unpack(done)) end
if #to_del > 0 then redis.call('DEL', unpack(to_del)) end
for _, t in pairs(trims) do trim(t[1], t[2], t[3]) end
if n_completed > 0 then
  redis.call('HINCRBY', metrics_key, 'c:' .. minute, n_completed)
  add_event(events_key, 'ev', 'completed', 'ids', table.concat(completed_ids, ','))
end
if n_failed > 0 then redis.call('HINCRBY', metrics_key, 'f:' .. minute, n_failed) end
if requeued > 0 and not paused then wake(marker_key) end
return lost
