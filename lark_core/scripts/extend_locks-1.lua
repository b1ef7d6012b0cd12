--[[
  Renew the locks of a worker's active jobs in one call.
  KEYS[1] active zset (score = lock deadline ms)
  ARGV[1] job key prefix   ARGV[2] lock ms   then pairs: id, token
  Returns: ids whose lock is no longer this worker's (stalled and recovered, or removed).
]]
local active_key = KEYS[1]
local prefix, lock_ms = ARGV[1], tonumber(ARGV[2])
local deadline = now_ms() + lock_ms
local lost = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', prefix .. id, 'tok') == token and redis.call('ZSCORE', active_key, id) then
    redis.call('ZADD', active_key, 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
