//! The Redis commands the mock implements over its [`Keyspace`], as a
//! script reaches them through `redis.call`: an argument vector in, a RESP
//! reply out, with Redis 7's semantics and error replies.

mod keys;
mod zsets;

use crate::data::{Keyspace, WrongType};

/// A RESP2 reply, as a command produces it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resp {
    Int(i64),
    Bulk(Vec<u8>),
    /// The null bulk string (and the null array).
    Nil,
    Status(String),
    /// An error reply: the error code, a space, the message.
    Error(String),
    Array(Vec<Resp>),
}

impl Resp {
    pub(crate) fn ok() -> Resp {
        Resp::Status("OK".to_owned())
    }

    fn bulk_or_nil(value: Option<&[u8]>) -> Resp {
        value.map_or(Resp::Nil, |v| Resp::Bulk(v.to_vec()))
    }
}

/// A command's outcome: `Err` is an error reply.
type CmdResult = Result<Resp, String>;

/// One command call: the keyspace, the node's time (epoch ms, fixed for the
/// whole script like Redis's time snapshot) and the argument vector with the
/// command name at `args[0]`, as Redis indexes it.
struct Call<'a> {
    data: &'a mut Keyspace,
    now: i64,
    args: &'a [Vec<u8>],
}

type Handler = fn(&mut Call<'_>) -> CmdResult;

/// Name (lowercase), arity as Redis counts it (the name included; negative
/// for "at least"), handler.
const COMMANDS: &[(&str, i32, Handler)] = &[
    ("get", 2, keys::get),
    ("set", -3, keys::set),
    ("del", -2, keys::del),
    ("exists", -2, keys::exists),
    ("type", 2, keys::type_),
    ("pexpire", -3, keys::pexpire),
    ("expire", -3, keys::expire),
    ("pexpireat", -3, keys::pexpireat),
    ("expireat", -3, keys::expireat),
    ("pttl", 2, keys::pttl),
    ("ttl", 2, keys::ttl),
    ("persist", 2, keys::persist),
    ("incr", 2, keys::incr),
    ("incrby", 3, keys::incrby),
    ("decr", 2, keys::decr),
    ("decrby", 3, keys::decrby),
    ("time", 1, keys::time),
    ("ping", -1, keys::ping),
    ("echo", 2, keys::echo),
    ("publish", 3, keys::publish),
    ("spublish", 3, keys::publish),
    ("zadd", -4, zsets::zadd),
    ("zrem", -3, zsets::zrem),
    ("zcard", 2, zsets::zcard),
    ("zscore", 3, zsets::zscore),
    ("zcount", 4, zsets::zcount),
    ("zrange", -4, zsets::zrange),
    ("zrangebyscore", -4, zsets::zrangebyscore),
    ("zremrangebyscore", 4, zsets::zremrangebyscore),
];

/// The names of the implemented commands, lowercase.
#[cfg(test)]
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().map(|(name, _, _)| *name)
}

/// Runs the command `argv` (name first, case-insensitive) on `data` at time
/// `now`. Unknown commands and wrong argument counts get the error replies
/// Redis gives a script.
pub(crate) fn execute(data: &mut Keyspace, now: i64, argv: &[Vec<u8>]) -> Resp {
    let Some(name) = argv.first() else {
        return Resp::Error(
            "ERR Please specify at least one argument for this redis lib call".into(),
        );
    };
    let Some(&(_, arity, handler)) = COMMANDS
        .iter()
        .find(|(n, _, _)| name.eq_ignore_ascii_case(n.as_bytes()))
    else {
        return Resp::Error("ERR Unknown Redis command called from script".into());
    };
    let argc = i32::try_from(argv.len()).unwrap_or(i32::MAX);
    if (arity > 0 && argc != arity) || argc < -arity {
        return Resp::Error("ERR Wrong number of args calling Redis command from script".into());
    }
    let mut call = Call {
        data,
        now,
        args: argv,
    };
    handler(&mut call).unwrap_or_else(Resp::Error)
}

// Argument parsing and the shared error replies.

fn syntax_error() -> String {
    "ERR syntax error".to_owned()
}

fn not_an_integer() -> String {
    "ERR value is not an integer or out of range".to_owned()
}

impl From<WrongType> for String {
    fn from(_: WrongType) -> String {
        WrongType::MESSAGE.to_owned()
    }
}

/// Whether `arg` is the option `name` (ASCII case-insensitive).
fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// A strict decimal integer like Redis's `string2ll`: an optional `-`, no
/// `+`, no spaces, no leading zeros, within `i64`.
fn parse_int(arg: &[u8]) -> Result<i64, String> {
    let digits = arg.strip_prefix(b"-").unwrap_or(arg);
    let canonical = match digits {
        [b'0'] => digits.len() == arg.len(), // "0", but not "-0"
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return Err(not_an_integer());
    }
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(not_an_integer)
}

/// A double as Redis's `strtod` reads it (`inf`, `-inf`, exponents), never
/// NaN; `None` when it is not one.
fn parse_float(arg: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(arg).ok()?;
    if s.is_empty() || s.trim() != s {
        return None;
    }
    s.parse::<f64>().ok().filter(|x| !x.is_nan())
}

/// A double formatted like Redis 7 replies with it: the shortest text that
/// reads back as the same value, integers without a fraction, `inf`/`-inf`,
/// and an exponent only for very large or small magnitudes (as `%.17g`).
pub(crate) fn format_double(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x == x.trunc() && x.abs() < 1e17 {
        #[allow(clippy::cast_possible_truncation)] // integral and in range
        return format!("{}", x as i64);
    }
    let sci = format!("{x:e}"); // shortest digits, such as "1.5e-7"
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-5..17).contains(&exponent) {
        format!("{x}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(data: &mut Keyspace, now: i64, argv: &[&str]) -> Resp {
        let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
        execute(data, now, &argv)
    }

    #[test]
    fn names_are_case_insensitive_and_unknown_ones_are_errors() {
        let mut data = Keyspace::default();
        assert_eq!(run(&mut data, 0, &["SeT", "k", "v"]), Resp::ok());
        assert_eq!(run(&mut data, 0, &["get", "k"]), Resp::Bulk(b"v".to_vec()));
        assert_eq!(
            run(&mut data, 0, &["NOSUCH", "k"]),
            Resp::Error("ERR Unknown Redis command called from script".into())
        );
        assert_eq!(
            run(&mut data, 0, &["GET"]),
            Resp::Error("ERR Wrong number of args calling Redis command from script".into())
        );
        assert_eq!(
            run(&mut data, 0, &["GET", "a", "b"]),
            Resp::Error("ERR Wrong number of args calling Redis command from script".into())
        );
        assert!(matches!(execute(&mut data, 0, &[]), Resp::Error(_)));
    }

    #[test]
    fn integers_parse_strictly() {
        for ok in [
            "0",
            "-1",
            "42",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert!(parse_int(ok.as_bytes()).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-",
            "-0",
            "+1",
            "01",
            " 1",
            "1 ",
            "1.0",
            "9223372036854775808",
            "x",
        ] {
            assert_eq!(parse_int(bad.as_bytes()), Err(not_an_integer()), "{bad}");
        }
    }

    #[test]
    fn floats_parse_like_strtod_without_nan() {
        assert_eq!(parse_float(b"1.5"), Some(1.5));
        assert_eq!(parse_float(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_float(b"1e3"), Some(1000.0));
        assert_eq!(parse_float(b"nan"), None);
        assert_eq!(parse_float(b" 1"), None);
        assert_eq!(parse_float(b""), None);
    }

    #[test]
    fn doubles_format_like_redis() {
        assert_eq!(format_double(1_700_000_000_123.0), "1700000000123");
        assert_eq!(format_double(-3.0), "-3");
        assert_eq!(format_double(0.1), "0.1");
        assert_eq!(format_double(2.5), "2.5");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(1.5e-7), "1.5e-07");
    }
}
