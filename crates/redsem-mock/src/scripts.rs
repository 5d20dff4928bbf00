//! Native emulation of redsem's six Lua scripts, with the same arguments and
//! replies as the `.lua` files in `redsem-core/src/scripts/`.

use std::borrow::Cow;

use redsem_core::{script, Arg, BackendError, BackendErrorKind, Reply, Script};

use crate::data::Keyspace;

/// The redsem script `script` stands for: one of [`script::ALL`] with the
/// same name and the same source (a user script that merely reuses a name is
/// not emulated).
pub(crate) fn known(script: &Script) -> Option<&'static Script> {
    script::ALL
        .iter()
        .copied()
        .find(|s| s.name() == script.name() && *s == script)
}

/// The error for a script the mock cannot run.
pub(crate) fn unknown(script: &Script) -> BackendError {
    let names: Vec<&str> = script::ALL.iter().map(|s| s.name()).collect();
    BackendError::new(
        BackendErrorKind::Server,
        format!(
            "ERR mock: script `{}` (sha1 {}) is not emulated; MockBackend only emulates \
             redsem's own scripts ({})",
            script.name(),
            script.sha1(),
            names.join(", ")
        ),
    )
}

/// Runs one of redsem's scripts against `data` at time `now` (epoch ms, the
/// script's `TIME`). `script` must come from [`known`].
pub(crate) fn run(
    data: &mut Keyspace,
    now: i64,
    script: &'static Script,
    keys: &[&str],
    args: &[Arg<'_>],
) -> Result<Reply, BackendError> {
    let call = Call { script, keys, args };
    let key = call.key()?;
    let reply = match script.name() {
        "mutex_acquire" => i64::from(data.set_nx_px(key, &call.str(1)?, call.int(2)?, now)?),
        "mutex_refresh" => mutex_refresh(data, now, key, &call.str(1)?, call.int(2)?)?,
        "mutex_release" => mutex_release(data, now, key, &call.str(1)?)?,
        "semaphore_acquire" => {
            let (limit, permits, ttl) = (call.int(1)?, call.int(2)?, call.int(4)?);
            semaphore_acquire(data, now, key, limit, permits, &call.str(3)?, ttl)?
        }
        "semaphore_refresh" => {
            semaphore_refresh(data, now, key, call.int(1)?, &call.str(2)?, call.int(3)?)?
        }
        "semaphore_release" => semaphore_release(data, now, key, call.int(1)?, &call.str(2)?)?,
        _ => return Err(unknown(script)),
    };
    Ok(Reply::Int(reply))
}

/// KEYS and ARGV of one call, read the way the Lua reads them.
struct Call<'a> {
    script: &'a Script,
    keys: &'a [&'a str],
    args: &'a [Arg<'a>],
}

impl<'a> Call<'a> {
    fn error(&self, what: String) -> BackendError {
        BackendError::new(
            BackendErrorKind::Server,
            format!("ERR Error running script {}: {what}", self.script.name()),
        )
    }

    /// `KEYS[1]`.
    fn key(&self) -> Result<&'a str, BackendError> {
        self.keys
            .first()
            .copied()
            .ok_or_else(|| self.error("KEYS[1] is missing".into()))
    }

    /// `ARGV[i]` (from 1) as a string.
    fn str(&self, i: usize) -> Result<Cow<'a, str>, BackendError> {
        match self.args.get(i - 1) {
            Some(Arg::Str(s)) => Ok(Cow::Borrowed(s)),
            Some(Arg::Int(n)) => Ok(Cow::Owned(n.to_string())),
            None => Err(self.error(format!("ARGV[{i}] is missing"))),
        }
    }

    /// `tonumber(ARGV[i])` (from 1); the mock accepts integers only.
    fn int(&self, i: usize) -> Result<i64, BackendError> {
        match self.args.get(i - 1) {
            Some(Arg::Int(n)) => Ok(*n),
            Some(Arg::Str(s)) => s.trim().parse().map_err(|_| {
                self.error(format!(
                    "ARGV[{i}] = {s:?} is not an integer (the mock emulates integers only)"
                ))
            }),
            None => Err(self.error(format!("ARGV[{i}] is missing"))),
        }
    }
}

fn mutex_refresh(
    data: &mut Keyspace,
    now: i64,
    key: &str,
    id: &str,
    ttl: i64,
) -> Result<i64, BackendError> {
    if data.get(key, now)? != Some(id) {
        return Ok(0);
    }
    data.pexpire(key, ttl, now)?;
    Ok(1)
}

fn mutex_release(data: &mut Keyspace, now: i64, key: &str, id: &str) -> Result<i64, BackendError> {
    if data.get(key, now)? != Some(id) {
        return Ok(0);
    }
    Ok(i64::from(data.del(key, now)))
}

/// The members a hold consists of: `<id>` for `permits` = 0, else
/// `<id>_0 .. <id>_<permits-1>`.
fn members(id: &str, permits: i64) -> Vec<Cow<'_, str>> {
    if permits == 0 {
        vec![Cow::Borrowed(id)]
    } else {
        (0..permits.max(0))
            .map(|j| Cow::Owned(format!("{id}_{j}")))
            .collect()
    }
}

/// ZADD of every member at `now` (a no-op for no members, which leaves no
/// empty set behind).
fn zadd_all(
    data: &mut Keyspace,
    now: i64,
    key: &str,
    members: &[Cow<'_, str>],
) -> Result<(), BackendError> {
    if members.is_empty() {
        return Ok(());
    }
    let z = data.zset_or_create(key, now)?;
    for m in members {
        z.add(m, now);
    }
    Ok(())
}

fn semaphore_acquire(
    data: &mut Keyspace,
    now: i64,
    key: &str,
    limit: i64,
    permits: i64,
    id: &str,
    ttl: i64,
) -> Result<i64, BackendError> {
    data.zrem_up_to(key, now.saturating_sub(ttl), now)?;
    let needed = if permits == 0 { 1 } else { permits };
    let card = data.zset(key, now)?.map_or(0, |z| z.len());
    let card = i64::try_from(card).unwrap_or(i64::MAX);
    if card.saturating_add(needed) > limit {
        return Ok(0);
    }
    zadd_all(data, now, key, &members(id, permits))?;
    data.pexpire(key, ttl, now)?;
    Ok(1)
}

fn semaphore_refresh(
    data: &mut Keyspace,
    now: i64,
    key: &str,
    permits: i64,
    id: &str,
    ttl: i64,
) -> Result<i64, BackendError> {
    data.zrem_up_to(key, now.saturating_sub(ttl), now)?;
    let members = members(id, permits);
    let all_present = match data.zset(key, now)? {
        Some(z) => members.iter().all(|m| z.score(m).is_some()),
        // The Lua's loop runs no ZSCORE for a negative permit count.
        None => members.is_empty(),
    };
    if !all_present {
        return Ok(0);
    }
    zadd_all(data, now, key, &members)?;
    data.pexpire(key, ttl, now)?;
    Ok(1)
}

fn semaphore_release(
    data: &mut Keyspace,
    now: i64,
    key: &str,
    permits: i64,
    id: &str,
) -> Result<i64, BackendError> {
    let members = members(id, permits);
    if members.is_empty() {
        // The Lua's loop runs no ZREM for a negative permit count.
        return Ok(0);
    }
    let removed = data.zrem(key, members.iter().map(|m| m.as_ref()), now)?;
    Ok(i64::try_from(removed).unwrap_or(i64::MAX))
}
