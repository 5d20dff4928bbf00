-- KEYS[1] = the resource's value; KEYS[2] = the newest token it accepted
-- (same slot); ARGV = [token, value]
-- Writes only with a token at least as new as the newest accepted (equal:
-- the same holder writing again). Returns 1 when written, else -newest.
local newest = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) < newest then
  return -newest
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[2])
return 1
