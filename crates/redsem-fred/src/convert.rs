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
/// fred reports server error replies with the whole reply as details and a
/// kind guessed from its code: [`ErrorKind::Unknown`] for most (`NOSCRIPT`,
/// `READONLY`, `LOADING`, `BUSY`, `MASTERDOWN`, `TRYAGAIN`, ...),
/// [`ErrorKind::Cluster`] for `MOVED`, `ASK` and `CLUSTERDOWN`,
/// [`ErrorKind::InvalidArgument`] for `WRONGTYPE`, [`ErrorKind::Auth`] for
/// `NOAUTH`. For those kinds the details are classified by their code with
/// [`BackendErrorKind::of_server_reply`], like every adapter does, so
/// failover replies are retryable ([`BackendErrorKind::Unavailable`]).
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
            | ErrorKind::Cluster
                if is_server_reply(err.details()) =>
            {
                BackendErrorKind::of_server_reply(err.details())
            }
            // fred's own words, not a reply: "Failed to route command.",
            // "Failed connecting to any cluster node.": it has no usable
            // connection right now.
            ErrorKind::Unknown | ErrorKind::Cluster => BackendErrorKind::Connection,
            ErrorKind::Protocol | ErrorKind::Parse | ErrorKind::NotFound => {
                BackendErrorKind::UnexpectedReply
            }
            _ => BackendErrorKind::Other,
        }
    };
    BackendError::from_source(kind, err)
}

/// Whether `details` is a Redis error reply: it starts with an error code
/// in capitals (`ERR`, `WRONGTYPE`, `READONLY`, ...).
fn is_server_reply(details: &str) -> bool {
    let code = details.split_whitespace().next().unwrap_or("");
    code.bytes().any(|b| b.is_ascii_uppercase())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
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
        // fred's own errors (not replies) when it has no usable connection:
        // retryable, as a connection error (seen during a connection reset).
        assert_eq!(
            kind(ErrorKind::Cluster, "Failed to find cluster owner."),
            BackendErrorKind::Connection
        );
        assert_eq!(
            kind(ErrorKind::Unknown, "Failed to route command."),
            BackendErrorKind::Connection
        );
        assert_eq!(
            kind(ErrorKind::Unknown, "NOPERM no permissions"),
            BackendErrorKind::Server
        );
        assert_eq!(
            kind(
                ErrorKind::Unknown,
                "BUSYGROUP Consumer Group name already exists"
            ),
            BackendErrorKind::Server
        );
        assert_eq!(
            kind(ErrorKind::Auth, "NOAUTH Authentication required."),
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

    /// Replies with which a deployment answers while loading, failing over
    /// or resharding: the call can succeed later, so they are retryable.
    /// Each comes in the form fred produces for it.
    #[test]
    fn transient_replies_are_unavailable() {
        for reply in [
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "MOVED 3999 127.0.0.1:6381",
            "ASK 3999 127.0.0.1:6381",
        ] {
            let fred_error = pretty_error(reply);
            assert_eq!(fred_error.details(), reply);
            let converted = error(fred_error);
            assert_eq!(converted.kind(), BackendErrorKind::Unavailable, "{reply}");
            assert!(converted.is_retryable(), "{reply}");
        }
        // fred's own errors are not mistaken for replies.
        assert_eq!(kind(ErrorKind::Config, "READONLY"), BackendErrorKind::Other);
    }

    /// How fred 10 turns an error reply into an [`Error`]
    /// (`fred::protocol::utils::pretty_error`, which is private): the kind is
    /// guessed from the code, the details are the whole reply.
    fn pretty_error(reply: &str) -> Error {
        let kind = match reply.split_whitespace().next().unwrap_or("") {
            "WRONGTYPE" => ErrorKind::InvalidArgument,
            "NOAUTH" | "WRONGPASS" => ErrorKind::Auth,
            "MOVED" | "ASK" | "CLUSTERDOWN" => ErrorKind::Cluster,
            _ => ErrorKind::Unknown,
        };
        Error::new(kind, reply.to_owned())
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
