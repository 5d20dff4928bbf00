-- KEYS[1] = mutex:<key>; KEYS[2] = its fencing counter (same slot)
-- ARGV = [identifier, lockTimeoutMs, floor]
-- `SET key id PX ttl NX`, and on success a fencing token: the counter
-- raised to max(counter + 1, floor). floor is 0 on one node; Redlock passes
-- the highest token it has seen plus one, so node counters converge.
-- Returns the token (>= 1) when acquired, 0 when busy.
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return 0
end
local next = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
if tonumber(ARGV[3]) > next then
  redis.call('SET', KEYS[2], ARGV[3])
  return tonumber(ARGV[3])
end
return redis.call('INCR', KEYS[2])
