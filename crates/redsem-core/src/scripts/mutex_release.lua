-- KEYS[1] = mutex:<key>; ARGV = [identifier]
-- Returns 1 when this identifier held the key and it was deleted, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
