-- The Lua side of redsem-mock's script engine, run once per Lua state.
--
-- Receives `bridge`, a table of Rust functions:
--   bridge.script_line()   the current line of the innermost frame of the
--                          running script, or nil
--   bridge.reply_error(e)  the message of an error reply raised by a Rust
--                          `redis.*` function (a failure object), or nil
--   bridge.sha1hex, bridge.log   redis.sha1hex and redis.log
-- Returns `env`, the read-only global table scripts see; `globals`, the
-- table behind it (where the engine sets KEYS and ARGV); `redis`, the table
-- behind the read-only `redis` (where the engine sets `call` and `pcall`
-- for each run: Rust functions over the node's keys); and `run`, which runs
-- a compiled script under Redis's error handler.
local bridge = ...

local error, type, tostring, select, setmetatable, setfenv, rawget =
  error, type, tostring, select, setmetatable, setfenv, rawget
local pcall, xpcall, loadstring, load = pcall, xpcall, loadstring, load

local function readonly_error()
  error('Attempt to modify a readonly table', 2)
end

-- A read-only view of `t`. With `strict`, reading a missing field is an
-- error, as for Redis's globals.
local function readonly(t, strict)
  local index = t
  if strict then
    index = function(_, name)
      local value = t[name]
      if value == nil then
        error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
      end
      return value
    end
  end
  return setmetatable({}, {
    __index = index,
    __newindex = readonly_error,
    __metatable = false,
  })
end

-- The error table Redis builds from a message: an error code first ("ERR"
-- when the message has none), line breaks trimmed.
local function error_table(message)
  if message:sub(1, 1) ~= '-' then
    message = '-' .. message
  end
  local code, text = 'ERR', message:sub(2)
  local space = message:find(' ', 1, true)
  if space then
    code, text = message:sub(2, space - 1), message:sub(space + 1)
  end
  text = text:gsub('^[\r\n]+', ''):gsub('[\r\n]+$', '')
  return { err = code .. ' ' .. text }
end

local redis = {}

function redis.error_reply(...)
  local message = ...
  if select('#', ...) ~= 1 or type(message) ~= 'string' then
    return { err = 'ERR wrong number or type of arguments' }
  end
  return error_table(message)
end

function redis.status_reply(...)
  local message = ...
  if select('#', ...) ~= 1 or type(message) ~= 'string' then
    return { err = 'ERR wrong number or type of arguments' }
  end
  return { ok = message }
end

redis.sha1hex = bridge.sha1hex
redis.log = bridge.log
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3

-- Effects replication is the only mode since Redis 7: these change nothing.
function redis.replicate_commands()
  return true
end
function redis.set_repl() end
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL =
  0, 1, 2, 2, 3

local globals = {}
local env = readonly(globals, true)

-- An error reply raised by redis.call as the table Redis raises.
local function normalize(e)
  if type(e) == 'userdata' then
    local message = bridge.reply_error(e)
    if message then
      return { err = message }
    end
  end
  return e
end

-- Redis 7's pcall: an error table comes back as its message.
local function pcall_result(ok, ...)
  if ok then
    return true, ...
  end
  local e = normalize((...))
  if type(e) == 'table' then
    local message = e.err
    if type(message) == 'string' or type(message) == 'number' then
      return false, message
    end
  end
  return false, e
end

local function with_env(f, message)
  if f then
    setfenv(f, env)
  end
  return f, message
end

for _, name in ipairs({
  'assert', 'error', 'getmetatable', 'ipairs', 'next', 'pairs', 'rawequal',
  'rawget', 'rawset', 'select', 'setmetatable', 'tonumber', 'tostring',
  'type', 'unpack', 'gcinfo', 'collectgarbage', '_VERSION',
}) do
  globals[name] = _G[name]
end
globals.pcall = function(...)
  return pcall_result(pcall(...))
end
globals.xpcall = function(f, handler)
  return xpcall(f, function(e)
    return handler(normalize(e))
  end)
end
globals.rawget = function(t, k)
  if t == env then
    t = globals
  end
  return rawget(t, k)
end
globals.loadstring = function(...)
  return with_env(loadstring(...))
end
globals.load = function(...)
  return with_env(load(...))
end
globals.string = readonly(string)
globals.table = readonly(table)
globals.math = readonly(math)
globals.redis = readonly(redis)
globals._G = env

-- Redis's error handler: any error becomes a table {err = ...} with the
-- script line it happened on.
local function handler(e)
  e = normalize(e)
  if type(e) ~= 'table' then
    e = { err = 'ERR ' .. tostring(e) }
  end
  local line = bridge.script_line()
  if line then
    e.source, e.line = '@user_script', line
  end
  return e
end

local function run(f)
  return xpcall(f, handler)
end

return env, globals, redis, run
