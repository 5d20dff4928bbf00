//! Parent-side Redis helpers.

use super::*;

/// Polls `condition` every 10 ms until it holds; fails after `within`.
#[track_caller]
pub(crate) fn wait_for(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

#[track_caller]
pub(crate) fn command(server: &RedisServer, args: &[&str]) -> RespValue {
    match server.command(args) {
        Ok(RespValue::Error(e)) => panic!("{args:?}: {e}"),
        Ok(reply) => reply,
        Err(e) => panic!("{args:?}: {e}"),
    }
}

/// An integer reply, or a string holding one; 0 for nil.
#[track_caller]
pub(crate) fn int(server: &RedisServer, args: &[&str]) -> i64 {
    match command(server, args) {
        RespValue::Integer(i) => i,
        RespValue::Nil => 0,
        reply => reply.as_str().and_then(|s| s.parse().ok()).unwrap(),
    }
}

#[track_caller]
pub(crate) fn get(server: &RedisServer, key: &str) -> Option<String> {
    command(server, &["GET", key]).as_str().map(str::to_owned)
}

#[track_caller]
pub(crate) fn list(server: &RedisServer, key: &str) -> Vec<u64> {
    let reply = command(server, &["LRANGE", key, "0", "-1"]);
    let items = reply.as_array().expect("LRANGE answers an array");
    items
        .iter()
        .map(|item| item.as_str().and_then(|s| s.parse().ok()).unwrap())
        .collect()
}
