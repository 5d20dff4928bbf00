-- KEYS[1] = semaphore:<key> (a ZSET of identifiers scored by acquire time)
-- KEYS[2] = its fencing counter (same slot)
-- ARGV = [limit, permits, identifier, lockTimeoutMs, floor or 'none']
-- permits = 0 is the plain Semaphore: one member named <identifier>.
-- permits >= 1 is the MultiSemaphore: members <identifier>_0 .. _<permits-1>.
-- Scores come from the server clock, so client clock skew cannot let an
-- extra holder in.
-- Returns the fencing token (>= 1) when acquired, 0 when full: the counter
-- raised to max(counter + 1, floor), as in mutex_fenced_acquire; 1 with
-- floor 'none' (fencing turned off), the counter untouched.
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local permits = tonumber(ARGV[2])
local id = ARGV[3]
local ttl = tonumber(ARGV[4])
-- Checked before any write, so no write can be left without an expiry.
if not ttl or ttl < 1 then
  return redis.error_reply('ERR invalid lock timeout ' .. tostring(ARGV[4]))
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - ttl)
local needed = permits
if permits == 0 then needed = 1 end
if redis.call('ZCARD', key) + needed > limit then
  return 0
end
if permits == 0 then
  redis.call('ZADD', key, now, id)
else
  -- chunked so a large permit count cannot overflow the Lua stack
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
-- ARGV[4] itself: a large number would reach Redis as "1e+17"
redis.call('PEXPIRE', key, ARGV[4])
if ARGV[5] == 'none' then
  return 1
end
local next = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
if tonumber(ARGV[5]) > next then
  redis.call('SET', KEYS[2], ARGV[5])
  return tonumber(ARGV[5])
end
return redis.call('INCR', KEYS[2])
