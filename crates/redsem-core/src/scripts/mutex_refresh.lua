-- KEYS[1] = mutex:<key>; ARGV = [identifier, lockTimeoutMs, publish command (optional)]
-- Returns 1 when extended, 0 when the hold is gone. A key found free is
-- announced (ARGV[3]: 'PUBLISH' or 'SPUBLISH'), so waiters need not poll.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder and (ARGV[3] == 'PUBLISH' or ARGV[3] == 'SPUBLISH') then
  redis.pcall(ARGV[3], KEYS[1], '')
end
return 0
