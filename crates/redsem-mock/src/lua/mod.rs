//! The node's script engine: one embedded Lua 5.1 state (the version Redis
//! embeds), created on first use, with each script compiled once and cached
//! by SHA-1, its `redis.call` bridged to [`commands`](crate::commands).

mod api;
mod convert;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use mlua::{Function, Lua, LuaOptions, MultiValue, StdLib, Table, Value};
use redsem_core::{Arg, BackendError, Reply, Script};

use crate::data::Keyspace;

/// The Lua side of the engine: the `redis` table, the sandboxed globals and
/// Redis's error handler.
const PRELUDE: &str = include_str!("prelude.lua");

/// The chunk name Redis gives scripts: errors read `user_script:<line>: ...`.
const CHUNK_NAME: &str = "@user_script";

/// A node's script cache (`SCRIPT LOAD`ed by `EVAL`) and the Lua state that
/// runs the scripts.
#[derive(Default)]
pub(crate) struct Scripts {
    vm: Option<Vm>,
}

impl fmt::Debug for Scripts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scripts")
            .field("cached", &self.len())
            .finish()
    }
}

impl Scripts {
    /// Whether the script with this SHA-1 is cached.
    pub(crate) fn contains(&self, sha1: &str) -> bool {
        self.vm
            .as_ref()
            .is_some_and(|vm| vm.functions.contains_key(sha1))
    }

    /// The number of cached scripts.
    pub(crate) fn len(&self) -> usize {
        self.vm.as_ref().map_or(0, |vm| vm.functions.len())
    }

    /// `SCRIPT FLUSH`: forgets every script and, like Redis, starts a new
    /// Lua state on next use.
    pub(crate) fn clear(&mut self) {
        self.vm = None;
    }

    /// Compiles `script` into the cache (the load half of `EVAL`); a script
    /// already cached is not compiled again.
    pub(crate) fn load(&mut self, script: &Script) -> Result<(), BackendError> {
        let vm = match &mut self.vm {
            Some(vm) => vm,
            slot @ None => slot.insert(Vm::new().map_err(internal)?),
        };
        if vm.functions.contains_key(script.sha1()) {
            return Ok(());
        }
        let function = vm
            .lua
            .load(script.source())
            .set_name(CHUNK_NAME)
            .set_environment(vm.env.clone())
            .into_function()
            .map_err(|e| {
                let message = match e {
                    mlua::Error::SyntaxError { message, .. } => message,
                    other => other.to_string(),
                };
                BackendError::server_reply(format!(
                    "ERR Error compiling script (new function): {message}"
                ))
            })?;
        vm.functions.insert(script.sha1().to_owned(), function);
        Ok(())
    }

    /// Runs the cached script with this SHA-1 against `data` at time `now`,
    /// with `KEYS` and `ARGV` set; `None` when it is not cached.
    pub(crate) fn run(
        &mut self,
        sha1: &str,
        data: &mut Keyspace,
        now: i64,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Option<Result<Reply, BackendError>> {
        let vm = self.vm.as_mut()?;
        let function = vm.functions.get(sha1)?.clone();
        Some(vm.run(sha1, function, data, now, keys, args))
    }
}

/// One Lua state with its compiled scripts.
struct Vm {
    lua: Lua,
    /// What scripts see as their globals (read-only).
    env: Table,
    /// The table behind `env`, where KEYS and ARGV go.
    globals: Table,
    /// The table behind the scripts' `redis`; `call` and `pcall` are set
    /// for each run.
    redis: Table,
    /// Runs a script under the error handler: `(ok, result or error)`.
    runner: Function,
    /// Compiled scripts by SHA-1.
    functions: HashMap<String, Function>,
}

impl Vm {
    fn new() -> mlua::Result<Vm> {
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH;
        let lua = Lua::new_with(libs, LuaOptions::new().catch_rust_panics(false))?;
        let bridge = lua.create_table()?;
        api::install(&lua, &bridge)?;
        let (env, globals, redis, runner): (Table, Table, Table, Function) = lua
            .load(PRELUDE)
            .set_name("=redsem_mock_prelude")
            .call(bridge)?;
        Ok(Vm {
            lua,
            env,
            globals,
            redis,
            runner,
            functions: HashMap::new(),
        })
    }

    fn run(
        &mut self,
        sha1: &str,
        function: Function,
        data: &mut Keyspace,
        now: i64,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        let outcome = self
            .call(function, data, now, keys, args)
            .map_err(internal)?;
        match outcome {
            (true, value) => convert::to_reply(value).map_err(BackendError::server_reply),
            (false, error) => Err(BackendError::server_reply(convert::script_error(
                &error, sha1,
            ))),
        }
    }

    /// Sets KEYS and ARGV, then runs `function` with `redis.call` reaching
    /// `data`; `(ok, first result or error object)`.
    fn call(
        &mut self,
        function: Function,
        data: &mut Keyspace,
        now: i64,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> mlua::Result<(bool, Value)> {
        let lua = &self.lua;
        let keys_table = lua.create_table_with_capacity(keys.len(), 0)?;
        for (i, key) in keys.iter().enumerate() {
            keys_table.raw_set(i + 1, lua.create_string(key)?)?;
        }
        // Redis hands every argument to the script as a string.
        let argv = lua.create_table_with_capacity(args.len(), 0)?;
        for (i, arg) in args.iter().enumerate() {
            let value = match arg {
                Arg::Str(s) => lua.create_string(s)?,
                Arg::Int(n) => lua.create_string(n.to_string())?,
            };
            argv.raw_set(i + 1, value)?;
        }
        self.globals.raw_set("KEYS", keys_table)?;
        self.globals.raw_set("ARGV", argv)?;
        let data = RefCell::new(data);
        lua.scope(|scope| {
            let call = scope.create_function(|lua, args: MultiValue| {
                api::command(lua, &data, now, &args, true)
            })?;
            let pcall = scope.create_function(|lua, args: MultiValue| {
                api::command(lua, &data, now, &args, false)
            })?;
            self.redis.raw_set("call", call)?;
            self.redis.raw_set("pcall", pcall)?;
            self.runner.call::<(bool, Value)>(function)
        })
    }
}

/// A failure of the engine itself, not of the script.
fn internal(e: mlua::Error) -> BackendError {
    BackendError::server_reply(format!("ERR mock: Lua engine failure: {e}"))
}
