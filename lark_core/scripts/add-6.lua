--[[
  Add jobs (one or a batch). Idempotent: an id that exists is left as it is.
  KEYS[1] wait     zset    KEYS[2] paused   zset    KEYS[3] delayed  zset
  KEYS[4] meta     hash    KEYS[5] marker   zset    KEYS[6] events   stream
  ARGV[1] job key prefix ("lark:{q}:job:")
  ARGV[2] number of jobs n
  ARGV[3] their ids, separated by single spaces (an id has no whitespace)
  ARGV[4] the size in bytes of each job's data, separated by spaces
  ARGV[5] the data (JSON) of the n jobs, concatenated in order
  ARGV[6] each job's profile number (1-based), separated by spaces; '' = all use profile 1
  ARGV[7...] profiles, groups of 4: name, opts (JSON), priority, delay ms
  Packing n jobs into a few arguments keeps the producer's cost per job small.
  Returns: array of n integers, 1 = added, 2 = added to a paused queue (state paused),
           0 = the id existed already.
]]
local wait_key, paused_key, delayed_key = KEYS[1], KEYS[2], KEYS[3]
local meta_key, marker_key, events_key = KEYS[4], KEYS[5], KEYS[6]
local prefix, n, blob = ARGV[1], tonumber(ARGV[2]), ARGV[5]

local now = now_ms()
local paused = is_paused(meta_key)
local ready_state = paused and 'paused' or 'waiting'

local names, opts, prios, delays = {}, {}, {}, {}
for p = 1, (#ARGV - 6) / 4 do
  local b = 3 + p * 4
  names[p], prios[p], delays[p] = ARGV[b], ARGV[b + 2], tonumber(ARGV[b + 3])
  if ARGV[b + 1] ~= '{}' then opts[p] = ARGV[b + 1] end  -- empty options are not stored
end
local ids, job_keys, sizes, profile_of = {}, {}, {}, {}
for id in string.gmatch(ARGV[3], '%S+') do
  ids[#ids + 1] = id
  job_keys[#job_keys + 1] = prefix .. id
end
for size in string.gmatch(ARGV[4], '%d+') do sizes[#sizes + 1] = tonumber(size) end
for p in string.gmatch(ARGV[6], '%d+') do profile_of[#profile_of + 1] = tonumber(p) end
if #ids ~= n or #sizes ~= n or (#profile_of ~= 0 and #profile_of ~= n) then
  return redis.error_reply('add: expected ' .. n .. ' ids, sizes and profile numbers')
end

-- attempts made and stalled count start absent (= 0)
local function store(job_key, p, data, state, ...)
  if opts[p] then
    redis.call('HSET', job_key, 'name', names[p], 'data', data, 'prio', prios[p], 'ts', now,
               'opts', opts[p], 'state', state, ...)
  else
    redis.call('HSET', job_key, 'name', names[p], 'data', data, 'prio', prios[p], 'ts', now,
               'state', state, ...)
  end
end

-- one EXISTS for the lot; each job is checked alone only if some of them exist
local any_existing = false
for c = 1, n, 1000 do
  any_existing = any_existing or redis.call('EXISTS', unpack(job_keys, c, math.min(c + 999, n))) > 0
end

local result, added, ready, seen = {}, {}, {}, {}
local seq = nil
local pos = 1
for i = 1, n do
  local id, job_key, p = ids[i], job_keys[i], profile_of[i] or 1
  local data = string.sub(blob, pos, pos + sizes[i] - 1)
  pos = pos + sizes[i]
  if seen[id] or (any_existing and redis.call('EXISTS', job_key) == 1) then
    result[i] = 0
  else
    seen[id] = true  -- the same id twice in one call: the second is "existed already"
    added[#added + 1] = id
    if delays[p] > 0 then
      result[i] = 1
      local due = now + delays[p]
      store(job_key, p, data, 'delayed', 'due', due)
      redis.call('ZADD', delayed_key, due, id)
    else
      result[i] = paused and 2 or 1
      if seq == nil then seq = next_seq(meta_key, n) else seq = seq + 1 end
      store(job_key, p, data, ready_state)
      ready[#ready + 1] = ready_score(prios[p], seq)
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
