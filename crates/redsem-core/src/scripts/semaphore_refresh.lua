-- KEYS[1] = semaphore:<key>; ARGV = [permits, identifier, lockTimeoutMs,
-- publish command (optional)]
-- permits = 0: plain Semaphore member <identifier>.
-- permits >= 1: MultiSemaphore members <identifier>_0 .. _<permits-1>; the
-- hold is refreshed only when every member is still present, so an instance
-- never reports more slots than it holds (redis-semaphore checks only _0).
-- Returns 1 when refreshed, 0 when the hold is gone (expired members are
-- pruned either way). A hold found gone is announced (ARGV[4]: 'PUBLISH'
-- or 'SPUBLISH'): pruning may have made room for a waiter.
local key = KEYS[1]
local permits = tonumber(ARGV[1])
local id = ARGV[2]
local ttl = tonumber(ARGV[3])
local function gone()
  if ARGV[4] == 'PUBLISH' or ARGV[4] == 'SPUBLISH' then
    redis.pcall(ARGV[4], key, '')
  end
  return 0
end
if not ttl or ttl < 1 then
  return redis.error_reply('ERR invalid lock timeout ' .. tostring(ARGV[3]))
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - ttl)
if permits == 0 then
  if not redis.call('ZSCORE', key, id) then
    return gone()
  end
  redis.call('ZADD', key, now, id)
else
  for j = 0, permits - 1 do
    if not redis.call('ZSCORE', key, id .. '_' .. j) then
      return gone()
    end
  end
  local i = 0
  while i < permits do
    local args = {}
    local last = math.min(i + 500, permits) - 1
    for j = i, last do
      args[#args + 1] = now
      args[#args + 1] = id .. '_' .. j
    end
    redis.call('ZADD', key, unpack(args))
    i = last + 1
  end
end
redis.call('PEXPIRE', key, ARGV[3])
return 1
