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

/// `PUBLISH channel message` and `SPUBLISH`: the channel goes to the
/// keyspace's outbox; the node delivers it to its subscriptions once the
/// command or script is done. Replies 0, as if nobody listened (the count
/// is only known at delivery).
pub(super) fn publish(c: &mut Call<'_>) -> CmdResult {
    c.data.outbox.push(c.args[1].clone());
    Ok(Resp::Int(0))
}
