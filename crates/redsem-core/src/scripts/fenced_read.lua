-- KEYS[1] = the resource's value; KEYS[2] = the newest token it accepted
-- Returns {token, value}, each false when never written.
return {redis.call('GET', KEYS[2]), redis.call('GET', KEYS[1])}
