-- No keys, no arguments. Returns the server's run_id (from INFO server):
-- what Redlock uses to refuse two backends that reach the same server.
return string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
