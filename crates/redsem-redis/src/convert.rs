//! Conversions from redis-rs replies and errors to redsem's.

use redis::{ErrorKind, RedisError, ServerErrorKind, Value};
use redsem_core::{BackendError, BackendErrorKind, Reply};

/// Classifies a redis-rs error, keeping it as the `source`.
///
/// Error replies are classified by their code with
/// [`BackendErrorKind::of_server_reply`], like every adapter does: redis-rs
/// gives some codes a [`ServerErrorKind`] of their own (`LOADING`,
/// `READONLY`, `MASTERDOWN`, `TRYAGAIN`, `CLUSTERDOWN`, `MOVED`, `ASK`,
/// `NOSCRIPT`, ...) and reports the others (`BUSY`, `WRONGTYPE`, ...) as
/// [`ErrorKind::Extension`]; [`RedisError::code`] names the code either way.
pub(crate) fn error(err: RedisError) -> BackendError {
    let kind = match err.kind() {
        ErrorKind::Server(ServerErrorKind::NoScript) => BackendErrorKind::NoScript,
        ErrorKind::Server(_) | ErrorKind::Extension => server_kind(&err),
        ErrorKind::Io if err.is_timeout() => BackendErrorKind::Timeout,
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => BackendErrorKind::Connection,
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => BackendErrorKind::UnexpectedReply,
        _ => BackendErrorKind::Other,
    };
    BackendError::from_source(kind, err)
}

/// The kind of an error reply, from its code and detail as Redis sent them
/// (redis-rs's `Display` renames codes, e.g. `READONLY` to `ReadOnly`).
fn server_kind(err: &RedisError) -> BackendErrorKind {
    match err.code() {
        Some(code) => {
            let reply = match err.detail() {
                Some(detail) => format!("{code} {detail}"),
                None => code.to_owned(),
            };
            BackendErrorKind::of_server_reply(&reply)
        }
        None => BackendErrorKind::Server,
    }
}

/// Converts a reply the way RESP2 would present it: maps and sets become
/// arrays, `true` becomes 1 and `false` nil (as Lua booleans do).
pub(crate) fn reply(value: Value) -> Result<Reply, BackendError> {
    Ok(match value {
        Value::Nil | Value::Boolean(false) => Reply::Nil,
        Value::Int(i) => Reply::Int(i),
        Value::Boolean(true) => Reply::Int(1),
        Value::BulkString(bytes) => Reply::Data(bytes),
        Value::SimpleString(s) => Reply::Status(s),
        Value::Okay => Reply::Status("OK".to_owned()),
        Value::VerbatimString { text, .. } => Reply::Data(text.into_bytes()),
        Value::Double(d) => Reply::Data(d.to_string().into_bytes()),
        Value::Array(items) | Value::Set(items) => {
            Reply::Array(items.into_iter().map(reply).collect::<Result<_, _>>()?)
        }
        Value::Map(pairs) => {
            let mut items = Vec::with_capacity(pairs.len() * 2);
            for (k, v) in pairs {
                items.push(reply(k)?);
                items.push(reply(v)?);
            }
            Reply::Array(items)
        }
        Value::Attribute { data, .. } => reply(*data)?,
        Value::ServerError(err) => return Err(error(err.into())),
        other => {
            return Err(BackendError::new(
                BackendErrorKind::UnexpectedReply,
                format!("unsupported reply {other:?}"),
            ))
        }
    })
}

/// The reply of `SET .. NX`: `OK` when set, nil when the key exists.
pub(crate) fn set_nx(value: Value) -> Result<bool, BackendError> {
    match value {
        Value::Okay => Ok(true),
        Value::SimpleString(s) if s == "OK" => Ok(true),
        Value::Nil => Ok(false),
        other => Err(BackendError::new(
            BackendErrorKind::UnexpectedReply,
            format!("SET NX returned {other:?}, expected OK or nil"),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    /// The error redis-rs produces for the RESP error reply `line`.
    fn server_error(line: &str) -> RedisError {
        let value = redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).expect("parses");
        value.extract_error().expect_err("is an error")
    }

    fn kind(err: RedisError) -> BackendErrorKind {
        error(err).kind()
    }

    #[test]
    fn errors_are_classified() {
        let noscript = server_error("NOSCRIPT No matching script. Please use EVAL.");
        assert_eq!(
            noscript.kind(),
            ErrorKind::Server(ServerErrorKind::NoScript)
        );
        assert_eq!(kind(noscript), BackendErrorKind::NoScript);
        assert_eq!(
            kind(server_error("ERR user_script:1: boom")),
            BackendErrorKind::Server
        );
        assert_eq!(
            kind(server_error("WRONGTYPE Operation")),
            BackendErrorKind::Server
        );
        assert_eq!(
            kind(server_error("CUSTOMCODE something")),
            BackendErrorKind::Server
        );
        for permanent in [
            "EXECABORT Transaction discarded because of previous errors.",
            "CROSSSLOT Keys in request don't hash to the same slot",
            "NOPERM User default has no permissions to run the 'set' command",
            "NOTBUSY No scripts in execution right now.",
            "BUSYGROUP Consumer Group name already exists",
        ] {
            assert_eq!(
                kind(server_error(permanent)),
                BackendErrorKind::Server,
                "{permanent}"
            );
        }
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(kind(refused.into()), BackendErrorKind::Connection);
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(kind(timed_out.into()), BackendErrorKind::Timeout);
        assert_eq!(
            kind((ErrorKind::Io, "dropped").into()),
            BackendErrorKind::Connection
        );
        let parse = (ErrorKind::UnexpectedReturnType, "bad");
        assert_eq!(kind(parse.into()), BackendErrorKind::UnexpectedReply);
        assert_eq!(
            kind((ErrorKind::Client, "x").into()),
            BackendErrorKind::Other
        );
    }

    /// Replies with which a deployment answers while loading, failing over
    /// or resharding: the call can succeed later, so they are retryable.
    #[test]
    fn transient_replies_are_unavailable() {
        for (line, redis_kind) in [
            (
                "LOADING Redis is loading the dataset in memory",
                Some(ServerErrorKind::BusyLoading),
            ),
            (
                "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
                None,
            ),
            (
                "READONLY You can't write against a read only replica.",
                Some(ServerErrorKind::ReadOnly),
            ),
            (
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
                Some(ServerErrorKind::MasterDown),
            ),
            (
                "TRYAGAIN Multiple keys request during rehashing of slot",
                Some(ServerErrorKind::TryAgain),
            ),
            (
                "CLUSTERDOWN The cluster is down",
                Some(ServerErrorKind::ClusterDown),
            ),
            ("MOVED 3999 127.0.0.1:6381", Some(ServerErrorKind::Moved)),
            ("ASK 3999 127.0.0.1:6381", Some(ServerErrorKind::Ask)),
        ] {
            let err = server_error(line);
            // redis-rs names most of these codes itself; BUSY is an extension.
            let expected = redis_kind.map_or(ErrorKind::Extension, ErrorKind::Server);
            assert_eq!(err.kind(), expected, "{line}");
            let converted = error(err);
            assert_eq!(converted.kind(), BackendErrorKind::Unavailable, "{line}");
            assert!(converted.is_retryable(), "{line}");
        }
        // A code without detail is classified too.
        assert_eq!(
            kind(server_error("READONLY")),
            BackendErrorKind::Unavailable
        );
        // An error built on the client side is not mistaken for a reply.
        assert_eq!(
            kind((ErrorKind::Client, "READONLY").into()),
            BackendErrorKind::Other
        );
    }

    #[test]
    fn transient_replies_inside_values_are_unavailable() {
        let value = redis::parse_redis_value(b"-LOADING Redis is loading\r\n").expect("parses");
        let err = reply(value).expect_err("is an error");
        assert_eq!(err.kind(), BackendErrorKind::Unavailable);
    }

    #[test]
    fn errors_keep_the_redis_error_as_source() {
        let err = error(server_error("ERR user_script:1: boom"));
        let source = std::error::Error::source(&err).expect("has a source");
        assert!(source.downcast_ref::<RedisError>().is_some());
        assert!(err.message().contains("boom"), "{}", err.message());
    }

    #[test]
    fn replies_are_converted() {
        assert_eq!(reply(Value::Nil).ok(), Some(Reply::Nil));
        assert_eq!(reply(Value::Int(7)).ok(), Some(Reply::Int(7)));
        assert_eq!(
            reply(Value::BulkString(b"x".to_vec())).ok(),
            Some(Reply::Data(b"x".to_vec()))
        );
        assert_eq!(reply(Value::Okay).ok(), Some(Reply::Status("OK".into())));
        assert_eq!(
            reply(Value::SimpleString("PONG".into())).ok(),
            Some(Reply::Status("PONG".into()))
        );
        assert_eq!(reply(Value::Boolean(true)).ok(), Some(Reply::Int(1)));
        assert_eq!(reply(Value::Boolean(false)).ok(), Some(Reply::Nil));
        let nested = Value::Array(vec![Value::Int(1), Value::Array(vec![Value::Nil])]);
        let expected = Reply::Array(vec![Reply::Int(1), Reply::Array(vec![Reply::Nil])]);
        assert_eq!(reply(nested).ok(), Some(expected));
        let map = Value::Map(vec![(Value::Int(1), Value::Int(2))]);
        assert_eq!(
            reply(map).ok(),
            Some(Reply::Array(vec![Reply::Int(1), Reply::Int(2)]))
        );
    }

    #[test]
    fn error_replies_inside_values_become_server_errors() {
        let value = redis::parse_redis_value(b"-ERR nope\r\n").expect("parses");
        let value = match value {
            Value::ServerError(_) => value,
            other => panic!("expected a server error value, got {other:?}"),
        };
        let err = reply(value).expect_err("is an error");
        assert_eq!(err.kind(), BackendErrorKind::Server);
    }

    #[test]
    fn set_nx_replies() {
        assert_eq!(set_nx(Value::Okay).ok(), Some(true));
        assert_eq!(set_nx(Value::SimpleString("OK".into())).ok(), Some(true));
        assert_eq!(set_nx(Value::Nil).ok(), Some(false));
        let err = set_nx(Value::Int(1)).expect_err("unexpected");
        assert_eq!(err.kind(), BackendErrorKind::UnexpectedReply);
    }
}
