--[[
  Pause or resume a queue for every worker. Ready jobs move wait <-> paused, keeping order;
  active jobs finish.
  KEYS[1] wait  KEYS[2] paused  KEYS[3] meta  KEYS[4] events  KEYS[5] marker
  ARGV[1] job key prefix   ARGV[2] '1' pause | '0' resume
  Returns: number of jobs moved.
]]
local wait_key, paused_key, meta_key = KEYS[1], KEYS[2], KEYS[3]
local prefix, pause = ARGV[1], ARGV[2] == '1'
local from, to = wait_key, paused_key
local state = 'paused'
if not pause then from, to, state = paused_key, wait_key, 'waiting' end
if pause then redis.call('HSET', meta_key, 'paused', '1') else redis.call('HDEL', meta_key, 'paused') end
local moved = 0
while true do
  local batch = redis.call('ZRANGE', from, 0, 999, 'WITHSCORES')
  if #batch == 0 then break end
  local zargs, ids = {}, {}
  for i = 1, #batch, 2 do
    zargs[#zargs + 1] = batch[i + 1]; zargs[#zargs + 1] = batch[i]
    ids[#ids + 1] = batch[i]
    redis.call('HSET', prefix .. batch[i], 'state', state)
  end
  redis.call('ZADD', to, unpack(zargs))
  redis.call('ZREM', from, unpack(ids))
  moved = moved + #ids
end
add_event(KEYS[4], 'ev', pause and 'paused' or 'resumed')
if not pause then wake(KEYS[5]) end
return moved
