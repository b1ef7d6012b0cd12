--[[
  Remove one job in any state but active (an active job belongs to its worker).
  KEYS[1] wait  KEYS[2] paused  KEYS[3] delayed  KEYS[4] completed  KEYS[5] failed
  KEYS[6] active  KEYS[7] events  KEYS[8] job hash  KEYS[9] logs list
  ARGV[1] id
  Returns: 1 removed, -1 no such job, -2 job is active.
]]
local id = ARGV[1]
if redis.call('EXISTS', KEYS[8]) == 0 then return -1 end
if redis.call('ZSCORE', KEYS[6], id) then return -2 end
for i = 1, 5 do redis.call('ZREM', KEYS[i], id) end
redis.call('DEL', KEYS[8], KEYS[9])
add_event(KEYS[7], 'ev', 'removed', 'id', id)
return 1
