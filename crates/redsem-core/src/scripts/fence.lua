-- KEYS[1] = the lock key; KEYS[2] = its fencing counter (same slot)
-- ARGV = [member, target, mode]
-- member: the identifier a mutex key holds, or the semaphore member (for a
-- multi-semaphore, its first member) that must still be there.
-- mode 'issue': counter = max(counter + 1, target); returns the new value.
-- mode 'raise': counter = target if it is lower; returns target, or
--   -counter when the counter already reached target (another holder's
--   value: the caller's token is not confirmed here).
-- Returns 0 when the hold is not there.
local held
if redis.call('TYPE', KEYS[1]).ok == 'zset' then
  held = redis.call('ZSCORE', KEYS[1], ARGV[1])
else
  held = redis.call('GET', KEYS[1]) == ARGV[1]
end
if not held then
  return 0
end
local counter = tonumber(redis.call('GET', KEYS[2]) or '0')
local target = tonumber(ARGV[2])
if ARGV[3] == 'issue' then
  if target > counter + 1 then
    redis.call('SET', KEYS[2], ARGV[2])
    return target
  end
  return redis.call('INCR', KEYS[2])
end
if counter < target then
  redis.call('SET', KEYS[2], ARGV[2])
  return target
end
return -counter
