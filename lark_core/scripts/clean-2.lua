--[[
  Remove finished jobs older than a grace period, a batch at a time.
  KEYS[1] completed or failed zset   KEYS[2] events stream
  ARGV[1] job key prefix  ARGV[2] logs key prefix  ARGV[3] grace ms  ARGV[4] batch limit
  Returns: number removed in this batch (call again until 0).
]]
local set_key = KEYS[1]
local cutoff = now_ms() - tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', set_key, '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[4]))
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. id, ARGV[2] .. id)
end
if #ids > 0 then
  redis.call('ZREM', set_key, unpack(ids))
  add_event(KEYS[2], 'ev', 'cleaned', 'count', #ids)
end
return #ids
