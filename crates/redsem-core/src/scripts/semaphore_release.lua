-- KEYS[1] = semaphore:<key>; ARGV = [permits, identifier, publish command (optional)]
-- permits = 0: removes <identifier>; permits >= 1: removes
-- <identifier>_0 .. _<permits-1>. Returns how many members were removed.
-- When any were, the release is announced on the channel named after the
-- key (ARGV[3]: 'PUBLISH' or 'SPUBLISH'); a failed publish is ignored.
local key = KEYS[1]
local permits = tonumber(ARGV[1])
local id = ARGV[2]
local function announce(removed)
  if removed > 0 and (ARGV[3] == 'PUBLISH' or ARGV[3] == 'SPUBLISH') then
    redis.pcall(ARGV[3], key, '')
  end
  return removed
end
if permits == 0 then
  return announce(redis.call('ZREM', key, id))
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
return announce(removed)
