-- KEYS[1] = mutex:<key>; ARGV = [identifier, lockTimeoutMs]
-- Fallback for backends without a native SET NX PX; same effect as
-- `SET key id PX ttl NX`.
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return 1
end
return 0
