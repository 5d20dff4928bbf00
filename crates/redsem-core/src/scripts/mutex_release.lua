-- KEYS[1] = mutex:<key>; ARGV = [identifier, publish command (optional)]
-- Returns 1 when this identifier held the key and it was deleted, else 0.
-- With ARGV[2] ('PUBLISH' or 'SPUBLISH') the release is announced on the
-- channel named after the key; a failed publish never fails the release.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] == 'PUBLISH' or ARGV[2] == 'SPUBLISH' then
    redis.pcall(ARGV[2], KEYS[1], '')
  end
  return 1
end
return 0
