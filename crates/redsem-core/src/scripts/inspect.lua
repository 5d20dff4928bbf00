-- KEYS[1] = the lock key. Read-only: returns {type, server time in ms,
-- PTTL, data}, where data is the holder (a mutex's string) or the members
-- with their scores (a semaphore's sorted set).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local kind = redis.call('TYPE', KEYS[1])['ok']
local pttl = redis.call('PTTL', KEYS[1])
if kind == 'string' then
  return {kind, now, pttl, redis.call('GET', KEYS[1])}
elseif kind == 'zset' then
  return {kind, now, pttl, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')}
end
return {kind, now, pttl, false}
