--[[
  Shared helpers, prepended to every script when it is loaded.
  Scores of wait/paused: priority * 2^31 + ready sequence mod 2^31 (FIFO within a priority).
  2^31, not 2^32: with priorities up to 2^21 every score stays below 2^53, where a double
  (a zset score) is still exact; at 2^32 the top priority rounded distinct jobs together.
]]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ready_score(prio, seq)
  return (tonumber(prio) or 0) * 2147483648 + (seq % 2147483648)
end

-- Reserve `n` ready-sequence numbers; returns the first.
local function next_seq(meta_key, n)
  return redis.call('HINCRBY', meta_key, 'seq', n) - n + 1
end

local function is_paused(meta_key)
  return redis.call('HGET', meta_key, 'paused') == '1'
end

local function add_event(events_key, ...)
  redis.call('XADD', events_key, 'MAXLEN', '~', 10000, '*', ...)
end

local function wake(marker_key)
  redis.call('ZADD', marker_key, 0, '1')
end
