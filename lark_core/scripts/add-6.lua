--[[
  Add jobs (one or a batch). Idempotent: an id that exists is left as it is.
  KEYS[1] wait     zset    KEYS[2] paused   zset    KEYS[3] delayed  zset
  KEYS[4] meta     hash    KEYS[5] marker   zset    KEYS[6] events   stream
  ARGV[1] job key prefix ("lark:{q}:job:")
  ARGV[2] number of jobs n; then n groups of 6:
          id, name, data (JSON), opts (JSON), priority, delay ms
  Returns: array of n integers, 1 = added, 2 = added to a paused queue (state paused),
           0 = the id existed already.
]]
local wait_key, paused_key, delayed_key = KEYS[1], KEYS[2], KEYS[3]
local meta_key, marker_key, events_key = KEYS[4], KEYS[5], KEYS[6]
local prefix = ARGV[1]
local n = tonumber(ARGV[2])

local now = now_ms()
local paused = is_paused(meta_key)
local result, added, ready = {}, {}, {}
local seq = nil

for i = 0, n - 1 do
  local b = 3 + i * 6
  local id, name, data, opts = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local prio, delay = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  local job_key = prefix .. id
  if redis.call('EXISTS', job_key) == 1 then
    result[i + 1] = 0
  else
    result[i + 1] = (paused and delay <= 0) and 2 or 1
    added[#added + 1] = id
    -- attempts made and stalled count start absent (= 0); empty options are not stored
    local fields = {'name', name, 'data', data, 'prio', prio, 'ts', now}
    if opts ~= '{}' then fields[#fields + 1] = 'opts'; fields[#fields + 1] = opts end
    fields[#fields + 1] = 'state'
    if delay > 0 then
      fields[#fields + 1] = 'delayed'
      fields[#fields + 1] = 'due'; fields[#fields + 1] = now + delay
      redis.call('HSET', job_key, unpack(fields))
      redis.call('ZADD', delayed_key, now + delay, id)
    else
      if seq == nil then seq = next_seq(meta_key, n) else seq = seq + 1 end
      fields[#fields + 1] = paused and 'paused' or 'waiting'
      redis.call('HSET', job_key, unpack(fields))
      ready[#ready + 1] = ready_score(prio, seq)
      ready[#ready + 1] = id
    end
  end
end
for c = 1, #ready, 2000 do
  redis.call('ZADD', paused and paused_key or wait_key, unpack(ready, c, math.min(c + 1999, #ready)))
end

if #added > 0 then
  if not paused then wake(marker_key) end
  add_event(events_key, 'ev', 'added', 'ids', table.concat(added, ','))
end
return result
