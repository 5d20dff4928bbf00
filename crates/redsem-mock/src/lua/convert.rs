//! Conversions between Redis and Lua, as Redis's scripting does them:
//! `redis.call` arguments to a command's argument vector, a command's reply
//! to a Lua value, and a script's result or error to the client's reply.

use mlua::{Lua, MultiValue, Table, Value};
use redsem_core::Reply;

use crate::commands::{format_double, Resp};

/// How deeply a script's returned tables may nest.
const MAX_DEPTH: usize = 1_000;

/// The arguments of `redis.call`: strings as they are, numbers as decimal
/// text (integers without a fraction); anything else is Redis's error.
pub(super) fn to_argv(args: &MultiValue) -> Result<Vec<Vec<u8>>, String> {
    if args.is_empty() {
        return Err("ERR Please specify at least one argument for this redis lib call".into());
    }
    args.iter()
        .map(|arg| match arg {
            Value::String(s) => Ok(s.as_bytes().to_vec()),
            Value::Integer(i) => Ok(i.to_string().into_bytes()),
            Value::Number(n) => Ok(format_double(*n).into_bytes()),
            _ => Err("ERR Lua redis lib command arguments must be strings or integers".into()),
        })
        .collect()
}

/// A command's reply as `redis.call` returns it: integer -> number, bulk ->
/// string, nil -> false, status -> `{ok = ...}`, error -> `{err = ...}`,
/// array -> table.
pub(super) fn to_lua(lua: &Lua, reply: Resp) -> mlua::Result<Value> {
    Ok(match reply {
        Resp::Int(i) => Value::Integer(i),
        Resp::Bulk(bytes) => Value::String(lua.create_string(bytes)?),
        Resp::Nil => Value::Boolean(false),
        Resp::Status(status) => single_field(lua, "ok", status)?,
        Resp::Error(message) => single_field(lua, "err", message)?,
        Resp::Array(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                table.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
    })
}

fn single_field(lua: &Lua, field: &str, text: String) -> mlua::Result<Value> {
    let table = lua.create_table_with_capacity(0, 1)?;
    table.raw_set(field, text)?;
    Ok(Value::Table(table))
}

/// A script's result as the client's reply: number -> integer (truncated
/// toward zero), string -> bulk, `true` -> 1, `false`/nil -> nil,
/// `{ok = ...}` -> status, `{double = ...}` -> the double as text, any other
/// table -> array up to its first nil. `{err = ...}` (at any depth) is an
/// error reply: `Err` with its text.
pub(super) fn to_reply(value: Value) -> Result<Reply, String> {
    reply(&value, 0)
}

fn reply(value: &Value, depth: usize) -> Result<Reply, String> {
    Ok(match value {
        Value::String(s) => Reply::Data(s.as_bytes().to_vec()),
        Value::Boolean(true) => Reply::Int(1),
        Value::Integer(i) => Reply::Int(*i),
        #[allow(clippy::cast_possible_truncation)] // C's (long long) cast, saturating
        Value::Number(n) => Reply::Int(*n as i64),
        Value::Table(table) => table_reply(table, depth)?,
        _ => Reply::Nil,
    })
}

fn table_reply(table: &Table, depth: usize) -> Result<Reply, String> {
    if depth >= MAX_DEPTH {
        return Err("ERR reached lua stack limit".into());
    }
    let field = |name: &str| table.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(err) = field("err") {
        return Err(one_line(&err.to_string_lossy()));
    }
    if let Value::String(ok) = field("ok") {
        return Ok(Reply::Status(one_line(&ok.to_string_lossy())));
    }
    match field("double") {
        Value::Number(x) => return Ok(Reply::Data(format_double(x).into_bytes())),
        #[allow(clippy::cast_precision_loss)] // a Lua number is a double
        Value::Integer(i) => return Ok(Reply::Data(format_double(i as f64).into_bytes())),
        _ => {}
    }
    let mut items = Vec::new();
    for j in 1.. {
        match table.raw_get::<Value>(j).unwrap_or(Value::Nil) {
            Value::Nil => break,
            item => items.push(reply(&item, depth + 1)?),
        }
    }
    Ok(Reply::Array(items))
}

/// The reply to a script that raised `error` (what Redis's error handler
/// made of it): `<message> script: <sha1>, on @user_script:<line>.`
pub(super) fn script_error(error: &Value, sha1: &str) -> String {
    let Value::Table(table) = error else {
        let what = text(error).unwrap_or_else(|| "execution failure".into());
        return one_line(&format!("ERR Error running script {sha1}, {what}"));
    };
    let field = |name: &str| text(&table.raw_get::<Value>(name).unwrap_or(Value::Nil));
    // A table without `err` (`error({})`): Redis itself has no message.
    let message = field("err").unwrap_or_else(|| "ERR execution failure".into());
    let message = match (field("source"), field("line")) {
        (Some(source), Some(line)) => format!("{message} script: {sha1}, on {source}:{line}."),
        _ => message,
    };
    one_line(&message)
}

/// A string or number as text (what `lua_isstring` accepts).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_string_lossy()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Number(n) => Some(format_double(*n)),
        _ => None,
    }
}

/// Error and status replies are one line: Redis trims trailing line breaks
/// and turns the others into spaces.
fn one_line(text: &str) -> String {
    text.trim_end_matches(['\r', '\n'])
        .replace(['\r', '\n'], " ")
}
