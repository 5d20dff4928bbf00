-- KEYS[1] = semaphore:<key>; ARGV = [permits, identifier]
-- permits = 0: removes <identifier>; permits >= 1: removes
-- <identifier>_0 .. _<permits-1>. Returns how many members were removed.
local key = KEYS[1]
local permits = tonumber(ARGV[1])
local id = ARGV[2]
if permits == 0 then
  return redis.call('ZREM', key, id)
end
local removed = 0
local i = 0
while i < permits do
  local members = {}
  local last = math.min(i + 500, permits) - 1
  for j = i, last do
    members[#members + 1] = id .. '_' .. j
  end
  removed = removed + redis.call('ZREM', key, unpack(members))
  i = last + 1
end
return removed
