//! The Rust functions of the `redis` table. They are C functions to Lua, as
//! in Redis, so a script's frame survives `return redis.call(...)` (Lua
//! drops the caller's frame on a tail call to a Lua function) and an error
//! can name the script line it happened on.

use std::cell::RefCell;
use std::fmt;

use mlua::{Lua, MultiValue, Table, Value};

use super::{convert, CHUNK_NAME};
use crate::commands::{self, Resp};
use crate::data::Keyspace;

/// An error reply raised by a `redis.*` function: in Lua a failure object
/// that the prelude turns into Redis's `{err = ...}` table (see
/// [`reply_error`]).
#[derive(Debug)]
struct RaisedReply(String);

impl fmt::Display for RaisedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedReply {}

fn raise<T>(message: impl Into<String>) -> mlua::Result<T> {
    Err(mlua::Error::external(RaisedReply(message.into())))
}

/// `redis.call` (`raise_errors`) or `redis.pcall` over `data` at `now`: runs
/// the command; an error reply is raised by `call` and returned as
/// `{err = ...}` by `pcall`.
pub(super) fn command(
    lua: &Lua,
    data: &RefCell<&mut Keyspace>,
    now: i64,
    args: &MultiValue,
    raise_errors: bool,
) -> mlua::Result<Value> {
    let reply = match convert::to_argv(args) {
        Ok(argv) => commands::execute(&mut data.borrow_mut(), now, &argv),
        Err(message) => Resp::Error(message),
    };
    match reply {
        Resp::Error(message) if raise_errors => raise(message),
        reply => convert::to_lua(lua, reply),
    }
}

/// Puts the functions that need no node state into the prelude's `bridge`
/// table.
pub(super) fn install(lua: &Lua, bridge: &Table) -> mlua::Result<()> {
    bridge.raw_set(
        "script_line",
        lua.create_function(|lua, ()| Ok(script_line(lua)))?,
    )?;
    bridge.raw_set(
        "reply_error",
        lua.create_function(|_, error: Value| Ok(reply_error(&error)))?,
    )?;
    bridge.raw_set("sha1hex", lua.create_function(sha1hex)?)?;
    bridge.raw_set("log", lua.create_function(log)?)?;
    Ok(())
}

/// The line the innermost frame of the running script is at: what Redis's
/// error handler reports.
fn script_line(lua: &Lua) -> Option<usize> {
    (0..)
        .map_while(|level| {
            lua.inspect_stack(level, |frame| {
                let in_script = frame.source().source.as_deref() == Some(CHUNK_NAME);
                in_script.then(|| frame.current_line()).flatten()
            })
        })
        .flatten()
        .next()
}

/// The message of an error reply raised by a `redis.*` function; `None` for
/// any other error object.
fn reply_error(error: &Value) -> Option<String> {
    let Value::Error(error) = error else {
        return None;
    };
    error
        .chain()
        .find_map(|e| e.downcast_ref::<RaisedReply>())
        .map(|raised| raised.0.clone())
}

/// `redis.sha1hex(s)`: the SHA-1 of `s` (a number as Lua prints it) as 40
/// lowercase hex digits.
fn sha1hex(lua: &Lua, args: MultiValue) -> mlua::Result<String> {
    if args.len() != 1 {
        return raise("ERR wrong number of arguments");
    }
    let text = match args.into_iter().next() {
        Some(value) => lua.coerce_string(value)?,
        None => None,
    };
    let bytes = text.map(|s| s.as_bytes().to_vec()).unwrap_or_default();
    Ok(sha1_smol::Sha1::from(bytes).digest().to_string())
}

/// `redis.log(level, message, ...)`: Redis's argument checks; the mock
/// keeps no log.
fn log(_: &Lua, args: MultiValue) -> mlua::Result<()> {
    if args.len() < 2 {
        return raise("ERR redis.log() requires two arguments or more.");
    }
    let level = match args.front() {
        Some(Value::Integer(i)) => *i,
        #[allow(clippy::cast_possible_truncation)] // as Redis's (int) cast
        Some(Value::Number(n)) => *n as i64,
        _ => return raise("ERR First argument must be a number (log level)."),
    };
    if !(0..=3).contains(&level) {
        return raise("ERR Invalid debug level.");
    }
    Ok(())
}
