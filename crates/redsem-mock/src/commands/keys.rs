//! String and generic key commands, expiry, counters, `TIME`, `PUBLISH`.

use super::{is, parse_int, syntax_error, Call, CmdResult, Resp};
use crate::data::Value;

fn invalid_expire(command: &str) -> String {
    format!("ERR invalid expire time in '{command}' command")
}

fn int_reply(n: usize) -> Resp {
    Resp::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// `GET key`
pub(super) fn get(c: &mut Call<'_>) -> CmdResult {
    Ok(Resp::bulk_or_nil(c.data.string(&c.args[1], c.now)?))
}

/// How `SET` sets the expiry.
enum Expiry {
    Keep,
    At(i64),
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`
pub(super) fn set(c: &mut Call<'_>) -> CmdResult {
    let (key, value) = (&c.args[1], &c.args[2]);
    let (mut nx, mut xx, mut get) = (false, false, false);
    let mut expiry: Option<Expiry> = None;
    let mut i = 3;
    while i < c.args.len() {
        let opt = c.args[i].as_slice();
        let next = c.args.get(i + 1);
        if is(opt, "nx") && !xx {
            nx = true;
        } else if is(opt, "xx") && !nx {
            xx = true;
        } else if is(opt, "get") {
            get = true;
        } else if is(opt, "keepttl") && expiry.is_none() {
            expiry = Some(Expiry::Keep);
        } else if let (Some(unit), Some(arg), None) = (expire_unit(opt), next, &expiry) {
            expiry = Some(Expiry::At(set_expiry_at(arg, unit, c.now)?));
            i += 1;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    let old = if get {
        Some(c.data.string(key, c.now)?.map(<[u8]>::to_vec))
    } else {
        None
    };
    let found = c.data.exists(key, c.now);
    if (nx && found) || (xx && !found) {
        return Ok(Resp::bulk_or_nil(old.flatten().as_deref()));
    }
    let expires_at = match expiry {
        Some(Expiry::Keep) => c.data.expiry(key, c.now).flatten(),
        Some(Expiry::At(at)) => Some(at),
        None => None,
    };
    c.data.set(key, Value::Str(value.clone()), expires_at);
    Ok(match old {
        Some(old) => Resp::bulk_or_nil(old.as_deref()),
        None => Resp::ok(),
    })
}

/// `SET`'s expiry options: (ms per unit, absolute).
fn expire_unit(opt: &[u8]) -> Option<(i64, bool)> {
    [
        ("ex", 1_000, false),
        ("px", 1, false),
        ("exat", 1_000, true),
        ("pxat", 1, true),
    ]
    .into_iter()
    .find(|(name, _, _)| is(opt, name))
    .map(|(_, ms, absolute)| (ms, absolute))
}

/// The absolute expiry `SET` computes from its option's argument: Redis
/// refuses zero, negative and overflowing times.
fn set_expiry_at(arg: &[u8], (unit_ms, absolute): (i64, bool), now: i64) -> Result<i64, String> {
    let n = parse_int(arg)?;
    if n <= 0 {
        return Err(invalid_expire("set"));
    }
    let ms = n
        .checked_mul(unit_ms)
        .ok_or_else(|| invalid_expire("set"))?;
    if absolute {
        Ok(ms)
    } else {
        ms.checked_add(now).ok_or_else(|| invalid_expire("set"))
    }
}

/// `DEL key [key ...]`
pub(super) fn del(c: &mut Call<'_>) -> CmdResult {
    let (data, now) = (&mut *c.data, c.now);
    Ok(int_reply(
        c.args[1..].iter().filter(|k| data.del(k, now)).count(),
    ))
}

/// `EXISTS key [key ...]` (a key named twice counts twice)
pub(super) fn exists(c: &mut Call<'_>) -> CmdResult {
    let (data, now) = (&mut *c.data, c.now);
    Ok(int_reply(
        c.args[1..].iter().filter(|k| data.exists(k, now)).count(),
    ))
}

/// `TYPE key`
pub(super) fn type_(c: &mut Call<'_>) -> CmdResult {
    let name = c
        .data
        .value(&c.args[1], c.now)
        .map_or("none", |v| v.type_name());
    Ok(Resp::Status(name.to_owned()))
}

/// `PEXPIRE key ms [NX|XX|GT|LT]`
pub(super) fn pexpire(c: &mut Call<'_>) -> CmdResult {
    expire_generic(c, 1, false, "pexpire")
}

/// `EXPIRE key seconds [NX|XX|GT|LT]`
pub(super) fn expire(c: &mut Call<'_>) -> CmdResult {
    expire_generic(c, 1_000, false, "expire")
}

/// `PEXPIREAT key unix-ms [NX|XX|GT|LT]`
pub(super) fn pexpireat(c: &mut Call<'_>) -> CmdResult {
    expire_generic(c, 1, true, "pexpireat")
}

/// `EXPIREAT key unix-seconds [NX|XX|GT|LT]`
pub(super) fn expireat(c: &mut Call<'_>) -> CmdResult {
    expire_generic(c, 1_000, true, "expireat")
}

/// The EXPIRE family: 1 when the timeout was set (a time already past
/// deletes the key), 0 when the key does not exist or a condition failed.
fn expire_generic(c: &mut Call<'_>, unit_ms: i64, absolute: bool, name: &str) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &c.args[3..] {
        match opt.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                return Err(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                ))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if gt && lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    let when = parse_int(&c.args[2])?;
    let when = when
        .checked_mul(unit_ms)
        .ok_or_else(|| invalid_expire(name))?;
    let at = if absolute {
        when
    } else {
        when.checked_add(c.now)
            .ok_or_else(|| invalid_expire(name))?
    };
    let key = &c.args[1];
    let Some(current) = c.data.expiry(key, c.now) else {
        return Ok(Resp::Int(0));
    };
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        // No expiry counts as an infinite TTL.
        || (gt && current.is_none_or(|cur| at <= cur))
        || (lt && current.is_some_and(|cur| at >= cur));
    if refused {
        return Ok(Resp::Int(0));
    }
    if at <= c.now {
        c.data.del(key, c.now);
    } else {
        c.data.set_expiry(key, Some(at), c.now);
    }
    Ok(Resp::Int(1))
}

/// The remaining time to live in ms: -2 without the key, -1 without expiry.
fn ttl_ms(c: &mut Call<'_>) -> i64 {
    match c.data.expiry(&c.args[1], c.now) {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => at.saturating_sub(c.now),
    }
}

/// `PTTL key`
pub(super) fn pttl(c: &mut Call<'_>) -> CmdResult {
    Ok(Resp::Int(ttl_ms(c)))
}

/// `TTL key`: seconds, rounded to the nearest.
pub(super) fn ttl(c: &mut Call<'_>) -> CmdResult {
    let ms = ttl_ms(c);
    Ok(Resp::Int(if ms < 0 {
        ms
    } else {
        ms.saturating_add(500) / 1_000
    }))
}

/// `PERSIST key`
pub(super) fn persist(c: &mut Call<'_>) -> CmdResult {
    let key = &c.args[1];
    let had_expiry = matches!(c.data.expiry(key, c.now), Some(Some(_)));
    if had_expiry {
        c.data.set_expiry(key, None, c.now);
    }
    Ok(Resp::Int(i64::from(had_expiry)))
}

/// Adds `delta` to the integer at `args[1]` (0 when missing), keeping its
/// TTL.
fn incr_by(c: &mut Call<'_>, delta: i64) -> CmdResult {
    let key = &c.args[1];
    let current = match c.data.string(key, c.now)? {
        None => 0,
        Some(text) => parse_int(text)?,
    };
    let new = current
        .checked_add(delta)
        .ok_or("ERR increment or decrement would overflow")?;
    let expires_at = c.data.expiry(key, c.now).flatten();
    c.data
        .set(key, Value::Str(new.to_string().into_bytes()), expires_at);
    Ok(Resp::Int(new))
}

/// `INCR key`
pub(super) fn incr(c: &mut Call<'_>) -> CmdResult {
    incr_by(c, 1)
}

/// `INCRBY key increment`
pub(super) fn incrby(c: &mut Call<'_>) -> CmdResult {
    let delta = parse_int(&c.args[2])?;
    incr_by(c, delta)
}

/// `DECR key`
pub(super) fn decr(c: &mut Call<'_>) -> CmdResult {
    incr_by(c, -1)
}

/// `DECRBY key decrement`
pub(super) fn decrby(c: &mut Call<'_>) -> CmdResult {
    let delta = parse_int(&c.args[2])?;
    let delta = delta.checked_neg().ok_or("ERR decrement would overflow")?;
    incr_by(c, delta)
}

/// `TIME`: the node clock as seconds and microseconds, both strings.
pub(super) fn time(c: &mut Call<'_>) -> CmdResult {
    let secs = c.now.div_euclid(1_000);
    let micros = c.now.rem_euclid(1_000) * 1_000;
    Ok(Resp::Array(vec![
        Resp::Bulk(secs.to_string().into_bytes()),
        Resp::Bulk(micros.to_string().into_bytes()),
    ]))
}

/// `PING [message]`
pub(super) fn ping(c: &mut Call<'_>) -> CmdResult {
    match c.args {
        [_] => Ok(Resp::Status("PONG".to_owned())),
        [_, message] => Ok(Resp::Bulk(message.clone())),
        _ => Err("ERR wrong number of arguments for 'ping' command".into()),
    }
}

/// `ECHO message`
pub(super) fn echo(c: &mut Call<'_>) -> CmdResult {
    Ok(Resp::Bulk(c.args[1].clone()))
}

/// `PUBLISH channel message` and `SPUBLISH`: nobody subscribes to the mock.
pub(super) fn publish(_: &mut Call<'_>) -> CmdResult {
    Ok(Resp::Int(0))
}

#[cfg(test)]
mod tests {
    use super::super::{execute, Resp};
    use crate::data::Keyspace;

    fn run(data: &mut Keyspace, now: i64, argv: &[&str]) -> Resp {
        let argv: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
        execute(data, now, &argv)
    }

    fn err(msg: &str) -> Resp {
        Resp::Error(msg.to_owned())
    }

    #[test]
    fn set_options() {
        let mut d = Keyspace::default();
        assert_eq!(
            run(&mut d, 0, &["SET", "k", "a", "NX", "PX", "100"]),
            Resp::ok()
        );
        assert_eq!(
            run(&mut d, 0, &["SET", "k", "b", "NX", "PX", "100"]),
            Resp::Nil
        );
        assert_eq!(run(&mut d, 0, &["PTTL", "k"]), Resp::Int(100));
        assert_eq!(
            run(&mut d, 10, &["SET", "k", "c", "XX", "GET", "KEEPTTL"]),
            Resp::Bulk(b"a".to_vec())
        );
        assert_eq!(run(&mut d, 10, &["PTTL", "k"]), Resp::Int(90));
        assert_eq!(run(&mut d, 10, &["SET", "k", "d", "EX", "2"]), Resp::ok());
        assert_eq!(run(&mut d, 10, &["TTL", "k"]), Resp::Int(2));
        assert_eq!(run(&mut d, 10, &["SET", "k", "e"]), Resp::ok());
        assert_eq!(run(&mut d, 10, &["PTTL", "k"]), Resp::Int(-1));
        assert_eq!(run(&mut d, 10, &["SET", "x", "v", "XX"]), Resp::Nil);
        assert_eq!(run(&mut d, 10, &["SET", "x", "v", "NX", "GET"]), Resp::Nil);
        assert_eq!(run(&mut d, 10, &["GET", "x"]), Resp::Bulk(b"v".to_vec()));
        assert_eq!(
            run(&mut d, 10, &["SET", "k", "v", "PXAT", "20"]),
            Resp::ok()
        );
        assert_eq!(run(&mut d, 20, &["EXISTS", "k"]), Resp::Int(0));
    }

    #[test]
    fn set_errors() {
        let mut d = Keyspace::default();
        let syntax = err("ERR syntax error");
        assert_eq!(run(&mut d, 0, &["SET", "k", "v", "NX", "XX"]), syntax);
        assert_eq!(run(&mut d, 0, &["SET", "k", "v", "PX"]), syntax);
        assert_eq!(
            run(&mut d, 0, &["SET", "k", "v", "PX", "1", "EX", "1"]),
            syntax
        );
        assert_eq!(
            run(&mut d, 0, &["SET", "k", "v", "KEEPTTL", "PX", "1"]),
            syntax
        );
        assert_eq!(run(&mut d, 0, &["SET", "k", "v", "BOGUS"]), syntax);
        let invalid = err("ERR invalid expire time in 'set' command");
        assert_eq!(run(&mut d, 0, &["SET", "k", "v", "PX", "0"]), invalid);
        assert_eq!(run(&mut d, 0, &["SET", "k", "v", "EX", "-1"]), invalid);
        assert_eq!(
            run(&mut d, 1, &["SET", "k", "v", "PX", "9223372036854775807"]),
            invalid
        );
        assert_eq!(
            run(&mut d, 0, &["SET", "k", "v", "PX", "1.5"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(run(&mut d, 0, &["EXISTS", "k"]), Resp::Int(0));
        run(&mut d, 0, &["ZADD", "z", "1", "m"]);
        assert_eq!(
            run(&mut d, 0, &["SET", "z", "v", "GET"]),
            err(crate::data::WrongType::MESSAGE)
        );
        assert_eq!(
            run(&mut d, 0, &["SET", "z", "v"]),
            Resp::ok(),
            "SET replaces any type"
        );
    }

    #[test]
    fn del_exists_type() {
        let mut d = Keyspace::default();
        run(&mut d, 0, &["SET", "a", "1"]);
        run(&mut d, 0, &["ZADD", "z", "1", "m"]);
        assert_eq!(
            run(&mut d, 0, &["EXISTS", "a", "a", "z", "n"]),
            Resp::Int(3)
        );
        assert_eq!(
            run(&mut d, 0, &["TYPE", "a"]),
            Resp::Status("string".into())
        );
        assert_eq!(run(&mut d, 0, &["TYPE", "z"]), Resp::Status("zset".into()));
        assert_eq!(run(&mut d, 0, &["TYPE", "n"]), Resp::Status("none".into()));
        assert_eq!(run(&mut d, 0, &["DEL", "a", "z", "n"]), Resp::Int(2));
    }

    #[test]
    fn expire_family() {
        let mut d = Keyspace::default();
        assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "10"]), Resp::Int(0));
        run(&mut d, 0, &["SET", "k", "v"]);
        assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "100", "XX"]), Resp::Int(0));
        assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "100", "GT"]), Resp::Int(0));
        assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "100", "NX"]), Resp::Int(1));
        assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "50", "GT"]), Resp::Int(0));
        assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "50", "LT"]), Resp::Int(1));
        assert_eq!(run(&mut d, 0, &["EXPIRE", "k", "3"]), Resp::Int(1));
        assert_eq!(run(&mut d, 0, &["PTTL", "k"]), Resp::Int(3_000));
        assert_eq!(run(&mut d, 0, &["TTL", "k"]), Resp::Int(3));
        assert_eq!(run(&mut d, 0, &["PEXPIREAT", "k", "5000"]), Resp::Int(1));
        assert_eq!(run(&mut d, 0, &["EXPIREAT", "k", "6"]), Resp::Int(1));
        assert_eq!(run(&mut d, 0, &["PTTL", "k"]), Resp::Int(6_000));
        assert_eq!(run(&mut d, 0, &["PERSIST", "k"]), Resp::Int(1));
        assert_eq!(run(&mut d, 0, &["PERSIST", "k"]), Resp::Int(0));
        assert_eq!(run(&mut d, 0, &["TTL", "k"]), Resp::Int(-1));
        assert_eq!(run(&mut d, 0, &["TTL", "missing"]), Resp::Int(-2));
        assert_eq!(run(&mut d, 0, &["PEXPIRE", "k", "0"]), Resp::Int(1));
        assert_eq!(run(&mut d, 0, &["EXISTS", "k"]), Resp::Int(0), "deleted");
        run(&mut d, 0, &["SET", "k", "v"]);
        assert_eq!(
            run(&mut d, 1, &["PEXPIRE", "k", "9223372036854775807"]),
            err("ERR invalid expire time in 'pexpire' command")
        );
        assert_eq!(
            run(&mut d, 0, &["EXPIRE", "k", "9223372036854775807"]),
            err("ERR invalid expire time in 'expire' command")
        );
        assert_eq!(
            run(&mut d, 0, &["PEXPIRE", "k", "1", "NX", "XX"]),
            err("ERR NX and XX, GT or LT options at the same time are not compatible")
        );
        assert_eq!(
            run(&mut d, 0, &["PEXPIRE", "k", "1", "GT", "LT"]),
            err("ERR GT and LT options at the same time are not compatible")
        );
        assert_eq!(
            run(&mut d, 0, &["PEXPIRE", "k", "1", "SOON"]),
            err("ERR Unsupported option SOON")
        );
        assert_eq!(
            run(&mut d, 0, &["PEXPIRE", "k", "x"]),
            err("ERR value is not an integer or out of range")
        );
    }

    #[test]
    fn counters_keep_the_ttl() {
        let mut d = Keyspace::default();
        assert_eq!(run(&mut d, 0, &["INCR", "n"]), Resp::Int(1));
        assert_eq!(run(&mut d, 0, &["INCRBY", "n", "41"]), Resp::Int(42));
        assert_eq!(run(&mut d, 0, &["DECR", "n"]), Resp::Int(41));
        assert_eq!(run(&mut d, 0, &["DECRBY", "n", "-1"]), Resp::Int(42));
        assert_eq!(run(&mut d, 0, &["GET", "n"]), Resp::Bulk(b"42".to_vec()));
        run(&mut d, 0, &["PEXPIRE", "n", "100"]);
        run(&mut d, 0, &["INCR", "n"]);
        assert_eq!(run(&mut d, 0, &["PTTL", "n"]), Resp::Int(100));
        run(&mut d, 0, &["SET", "t", "text"]);
        assert_eq!(
            run(&mut d, 0, &["INCR", "t"]),
            err("ERR value is not an integer or out of range")
        );
        run(&mut d, 0, &["SET", "max", "9223372036854775807"]);
        assert_eq!(
            run(&mut d, 0, &["INCR", "max"]),
            err("ERR increment or decrement would overflow")
        );
        run(&mut d, 0, &["ZADD", "z", "1", "m"]);
        assert_eq!(
            run(&mut d, 0, &["INCR", "z"]),
            err(crate::data::WrongType::MESSAGE)
        );
    }

    #[test]
    fn time_ping_echo_publish() {
        let mut d = Keyspace::default();
        assert_eq!(
            run(&mut d, 1_700_000_000_123, &["TIME"]),
            Resp::Array(vec![
                Resp::Bulk(b"1700000000".to_vec()),
                Resp::Bulk(b"123000".to_vec())
            ])
        );
        assert_eq!(run(&mut d, 0, &["PING"]), Resp::Status("PONG".into()));
        assert_eq!(run(&mut d, 0, &["PING", "hi"]), Resp::Bulk(b"hi".to_vec()));
        assert_eq!(run(&mut d, 0, &["ECHO", "hi"]), Resp::Bulk(b"hi".to_vec()));
        assert_eq!(run(&mut d, 0, &["PUBLISH", "ch", "m"]), Resp::Int(0));
        assert_eq!(run(&mut d, 0, &["SPUBLISH", "ch", "m"]), Resp::Int(0));
    }
}
