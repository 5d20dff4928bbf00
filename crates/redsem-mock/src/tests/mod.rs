//! Unit tests through the public API, by concern.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod faults;
mod key_commands;
mod lua_bridge;
mod mutex_scripts;
mod node;
mod semaphore_scripts;
mod zset_commands;

use futures::executor::block_on;
use redsem_core::{Arg, RedisBackend, Reply, Script};

use crate::MockBackend;

/// Runs `script` through `run_script` and returns its integer reply.
fn run(redis: &MockBackend, script: &Script, key: &str, args: &[Arg<'_>]) -> i64 {
    match block_on(redis.run_script(script, &[key], args)).unwrap() {
        Reply::Int(n) => n,
        other => panic!("{} returned {other:?}", script.name()),
    }
}

/// Asserts that `key` has a TTL of `ms`, give or take the real milliseconds
/// that passed since it was set (the node clock runs in real time too).
#[track_caller]
fn assert_ttl(redis: &MockBackend, key: &str, ms: u64) {
    let ttl = redis.ttl(key).map(|d| d.as_millis());
    let ms = u128::from(ms);
    assert!(
        ttl.is_some_and(|t| t <= ms && t + 200 >= ms),
        "TTL of {key} is {ttl:?} ms, expected about {ms} ms"
    );
}
