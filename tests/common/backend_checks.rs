//! The backend contract of `RedisBackend` (see its docs), checked on one
//! node: plain `async fn(&dyn Node, key)`s that call the backend under test
//! through `node.backend()` and look at the outcome through the node's own
//! sync inspection, which bypasses that backend.
//!
//! `tests/backend_contract.rs` runs every check on every backend through the
//! list macros below. Each check uses only the key it is given, which must not
//! exist yet.

use redsem_core::script::{MUTEX_RELEASE, SEMAPHORE_ACQUIRE};
use redsem_core::{Arg, BackendErrorKind, Reply, Script};

use super::node::Node;

/// Calls `$m! { check, ... }` with the checks every backend runs, the mock
/// included: they run only redsem's own scripts.
macro_rules! every_backend_checks {
    ($m:ident) => {
        $m! {
            set_nx_px,
            script_keys_and_args_in_order,
            noscript_falls_back_to_eval,
            script_error_is_server_error,
        }
    };
}

pub(crate) use every_backend_checks;

/// Calls `$m! { check, ... }` with the checks that run arbitrary Lua, which
/// only real servers do (the mock emulates redsem's six scripts natively and
/// refuses any other).
macro_rules! real_redis_checks {
    ($m:ident) => {
        $m! {
            lua_keys_args_and_replies,
            lua_errors_are_server_errors,
        }
    };
}

pub(crate) use real_redis_checks;

static ECHO: Script = Script::new(
    "test_echo",
    "return {KEYS[1], tonumber(ARGV[1]) + 1, ARGV[2], #KEYS, #ARGV}",
);
static BOOM: Script = Script::new("test_boom", "return redis.error_reply('boom')");
static BAD_CALL: Script = Script::new("test_bad_call", "return redis.call('INCR', KEYS[1])");

/// `SET NX PX` sets once, with the value and the TTL given.
pub async fn set_nx_px(node: &dyn Node, key: &str) {
    let backend = node.backend();
    assert!(backend
        .set_nx_px(key, "a", 10_000)
        .await
        .expect("first set"));
    assert!(!backend
        .set_nx_px(key, "b", 10_000)
        .await
        .expect("second set"));
    assert_eq!(node.get(key).as_deref(), Some("a"));
    let ttl = node.pttl(key);
    assert!((9_000..=10_000).contains(&ttl), "ttl {ttl}");
}

/// A script gets its keys and arguments in order, integers as numbers
/// (`semaphore_acquire` reads limit, permits, identifier, TTL, token floor
/// and the fencing counter's key), and its integer reply converts (the
/// first fencing token).
pub async fn script_keys_and_args_in_order(node: &dyn Node, key: &str) {
    let fence = redsem_core::companion_key(key, ":fence");
    let args = [
        Arg::Int(3),
        Arg::Int(2),
        Arg::Str("id"),
        Arg::Int(10_000),
        Arg::Int(0),
    ];
    let reply = node
        .backend()
        .run_script(&SEMAPHORE_ACQUIRE, &[key, &fence], &args)
        .await
        .expect("semaphore_acquire");
    assert_eq!(reply.as_i64(), Some(1), "{reply:?}");
    assert_eq!(node.get(&fence).as_deref(), Some("1"));
    assert_eq!(node.zrange(key), ["id_0", "id_1"]);
    let ttl = node.pttl(key);
    assert!((9_000..=10_000).contains(&ttl), "ttl {ttl}");
}

/// `EVAL` caches a script for `EVALSHA`; after `SCRIPT FLUSH`, `EVALSHA`
/// fails with `NoScript` (and runs nothing), `run_script` falls back to
/// `EVAL`, and that caches the script again.
pub async fn noscript_falls_back_to_eval(node: &dyn Node, key: &str) {
    let backend = node.backend();
    assert!(backend.set_nx_px(key, "me", 10_000).await.expect("set"));
    let not_mine = [Arg::Str("not me")];
    let reply = backend.run_script(&MUTEX_RELEASE, &[key], &not_mine).await;
    assert_eq!(reply.expect("release, not mine").as_i64(), Some(0));
    let cached = backend.eval_sha(&MUTEX_RELEASE, &[key], &not_mine).await;
    assert_eq!(cached.expect("cached by EVAL").as_i64(), Some(0));
    node.flush_scripts();
    let err = backend
        .eval_sha(&MUTEX_RELEASE, &[key], &[Arg::Str("me")])
        .await
        .expect_err("EVALSHA after SCRIPT FLUSH");
    assert_eq!(err.kind(), BackendErrorKind::NoScript, "{err}");
    assert_eq!(node.get(key).as_deref(), Some("me"), "NOSCRIPT ran nothing");
    let released = backend
        .run_script(&MUTEX_RELEASE, &[key], &[Arg::Str("me")])
        .await;
    assert_eq!(released.expect("release").as_i64(), Some(1));
    assert_eq!(node.get(key), None, "released");
    let again = backend
        .eval_sha(&MUTEX_RELEASE, &[key], &[Arg::Str("me")])
        .await;
    assert_eq!(again.expect("cached by EVAL").as_i64(), Some(0));
}

/// A command failing inside a script (`mutex_release`'s `GET` on a sorted
/// set: WRONGTYPE) is a `Server` error, and the key is left as it was.
pub async fn script_error_is_server_error(node: &dyn Node, key: &str) {
    node.zadd(key, 1, "member");
    let err = node
        .backend()
        .run_script(&MUTEX_RELEASE, &[key], &[Arg::Str("me")])
        .await
        .expect_err("GET on a sorted set");
    assert_eq!(err.kind(), BackendErrorKind::Server, "{err}");
    assert!(err.message().contains("WRONGTYPE"), "{err}");
    assert_eq!(node.zrange(key), ["member"]);
}

/// An arbitrary script gets its keys and arguments in order, integers as
/// numbers; array, bulk string and integer replies convert.
pub async fn lua_keys_args_and_replies(node: &dyn Node, key: &str) {
    let reply = node
        .backend()
        .run_script(&ECHO, &[key], &[Arg::Int(41), Arg::Str("id")])
        .await
        .expect("echo");
    let expected = Reply::Array(vec![
        Reply::Data(key.as_bytes().to_vec()),
        Reply::Int(42),
        Reply::Data(b"id".to_vec()),
        Reply::Int(1),
        Reply::Int(2),
    ]);
    assert_eq!(reply, expected);
}

/// A Lua error reply and a failing `redis.call` are `Server` errors that keep
/// the client's error as their source.
pub async fn lua_errors_are_server_errors(node: &dyn Node, key: &str) {
    let backend = node.backend();
    let err = backend
        .run_script(&BOOM, &[key], &[])
        .await
        .expect_err("error_reply");
    assert_eq!(err.kind(), BackendErrorKind::Server, "{err}");
    assert!(err.message().contains("boom"), "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "keeps the client error"
    );

    node.set(key, "not a number");
    let err = backend
        .run_script(&BAD_CALL, &[key], &[])
        .await
        .expect_err("INCR on text");
    assert_eq!(err.kind(), BackendErrorKind::Server, "{err}");
    assert_eq!(node.get(key).as_deref(), Some("not a number"));
}
