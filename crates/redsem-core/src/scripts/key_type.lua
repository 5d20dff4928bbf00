-- KEYS[1] = the lock key. Returns its type ("none", "string", "hash", ...):
-- used only after an acquire timed out, to tell "busy" from foreign data.
return redis.call('TYPE', KEYS[1])['ok']
