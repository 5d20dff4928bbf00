//! Conversions from fred values and errors to redsem's, and of redsem's
//! arguments to fred values.

use fred::error::{Error, ErrorKind};
use fred::types::Value;
use redsem_core::{Arg, BackendError, BackendErrorKind, Reply};

/// The script arguments as one fred value, integers kept as integers.
pub(crate) fn args(args: &[Arg<'_>]) -> Value {
    Value::Array(
        args.iter()
            .map(|arg| match *arg {
                Arg::Str(s) => Value::from(s),
                Arg::Int(i) => Value::Integer(i),
            })
            .collect(),
    )
}

/// Classifies a fred error, keeping it as the `source`.
///
/// fred reports most server error replies as [`ErrorKind::Unknown`] with the
/// reply as details, `NOSCRIPT` included.
pub(crate) fn error(err: Error) -> BackendError {
    let kind = if err.details().starts_with("NOSCRIPT") {
        BackendErrorKind::NoScript
    } else {
        match err.kind() {
            ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Routing | ErrorKind::Backpressure => {
                BackendErrorKind::Connection
            }
            ErrorKind::Timeout => BackendErrorKind::Timeout,
            ErrorKind::Unknown
            | ErrorKind::InvalidArgument
            | ErrorKind::InvalidCommand
            | ErrorKind::Auth
            | ErrorKind::Cluster => BackendErrorKind::Server,
            ErrorKind::Protocol | ErrorKind::Parse | ErrorKind::NotFound => {
                BackendErrorKind::UnexpectedReply
            }
            _ => BackendErrorKind::Other,
        }
    };
    BackendError::from_source(kind, err)
}

/// Converts a reply the way RESP2 would present it: maps become arrays of
/// pairs, `true` becomes 1 and `false` nil (as Lua booleans do). fred does
/// not tell status from bulk strings; both become [`Reply::Data`].
pub(crate) fn reply(value: Value) -> Reply {
    match value {
        Value::Null | Value::Boolean(false) => Reply::Nil,
        Value::Integer(i) => Reply::Int(i),
        Value::Boolean(true) => Reply::Int(1),
        Value::String(s) => Reply::Data(s.as_bytes().to_vec()),
        Value::Bytes(b) => Reply::Data(b.to_vec()),
        Value::Double(d) => Reply::Data(d.to_string().into_bytes()),
        Value::Queued => Reply::Status("QUEUED".to_owned()),
        Value::Array(items) => Reply::Array(items.into_iter().map(reply).collect()),
        Value::Map(map) => {
            let map = map.inner();
            let mut items = Vec::with_capacity(map.len() * 2);
            for (k, v) in map {
                items.push(Reply::Data(k.as_bytes().to_vec()));
                items.push(reply(v));
            }
            Reply::Array(items)
        }
    }
}

/// The reply of `SET .. NX`: `OK` when set, nil when the key exists.
pub(crate) fn set_nx(value: Value) -> Result<bool, BackendError> {
    match value {
        Value::Null => Ok(false),
        Value::String(s) if &*s == "OK" => Ok(true),
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

    fn kind(kind: ErrorKind, details: &'static str) -> BackendErrorKind {
        error(Error::new(kind, details)).kind()
    }

    #[test]
    fn errors_are_classified() {
        let noscript = "NOSCRIPT No matching script. Please use EVAL.";
        assert_eq!(
            kind(ErrorKind::Unknown, noscript),
            BackendErrorKind::NoScript
        );
        let lua = "ERR user_script:1: boom script: abc, on @user_script:1.";
        assert_eq!(kind(ErrorKind::Unknown, lua), BackendErrorKind::Server);
        assert_eq!(
            kind(ErrorKind::InvalidArgument, "WRONGTYPE x"),
            BackendErrorKind::Server
        );
        assert_eq!(
            kind(ErrorKind::Cluster, "MOVED 1 a:1"),
            BackendErrorKind::Server
        );
        assert_eq!(
            kind(ErrorKind::IO, "broken pipe"),
            BackendErrorKind::Connection
        );
        assert_eq!(
            kind(ErrorKind::Canceled, "Canceled."),
            BackendErrorKind::Connection
        );
        assert_eq!(
            kind(ErrorKind::Timeout, "Request timed out."),
            BackendErrorKind::Timeout
        );
        assert_eq!(
            kind(ErrorKind::Protocol, "bad frame"),
            BackendErrorKind::UnexpectedReply
        );
        assert_eq!(kind(ErrorKind::Config, "x"), BackendErrorKind::Other);
    }

    #[test]
    fn errors_keep_the_fred_error_as_source() {
        let err = error(Error::new(ErrorKind::Unknown, "ERR boom"));
        let source = std::error::Error::source(&err).expect("has a source");
        assert!(source.downcast_ref::<Error>().is_some());
        assert!(err.message().contains("boom"), "{}", err.message());
    }

    #[test]
    fn arguments_keep_integers() {
        let value = args(&[Arg::Str("id"), Arg::Int(-5)]);
        let Value::Array(items) = value else {
            panic!("not an array")
        };
        assert_eq!(items, vec![Value::from("id"), Value::Integer(-5)]);
    }

    #[test]
    fn replies_are_converted() {
        assert_eq!(reply(Value::Null), Reply::Nil);
        assert_eq!(reply(Value::Integer(7)), Reply::Int(7));
        assert_eq!(reply(Value::from("x")), Reply::Data(b"x".to_vec()));
        assert_eq!(reply(Value::Boolean(true)), Reply::Int(1));
        assert_eq!(reply(Value::Boolean(false)), Reply::Nil);
        let nested = Value::Array(vec![Value::Integer(1), Value::Array(vec![Value::Null])]);
        let expected = Reply::Array(vec![Reply::Int(1), Reply::Array(vec![Reply::Nil])]);
        assert_eq!(reply(nested), expected);
    }

    #[test]
    fn set_nx_replies() {
        assert_eq!(set_nx(Value::from("OK")).ok(), Some(true));
        assert_eq!(set_nx(Value::Null).ok(), Some(false));
        let err = set_nx(Value::Integer(1)).expect_err("unexpected");
        assert_eq!(err.kind(), BackendErrorKind::UnexpectedReply);
    }
}
