//! Backend checks shared by the tokio and smol tests: plain `async fn`s over
//! any backend.

use std::future::Future;

use redsem_core::script::MUTEX_RELEASE;
use redsem_core::{Arg, BackendErrorKind, RedisBackend, Reply, Script};

static PTTL: Script = Script::new("test_pttl", "return redis.call('PTTL', KEYS[1])");
static ECHO: Script = Script::new(
    "test_echo",
    "return {KEYS[1], tonumber(ARGV[1]) + 1, ARGV[2], #KEYS, #ARGV}",
);
static BOOM: Script = Script::new("test_boom", "return redis.error_reply('boom')");
static BAD_CALL: Script = Script::new("test_bad_call", "return redis.call('INCR', KEYS[1])");

/// `SET NX PX` sets once, with the TTL given.
pub async fn set_nx_px(backend: &dyn RedisBackend, key: &str) {
    assert!(backend
        .set_nx_px(key, "a", 10_000)
        .await
        .expect("first set"));
    assert!(!backend
        .set_nx_px(key, "b", 10_000)
        .await
        .expect("second set"));
    let ttl = backend.run_script(&PTTL, &[key], &[]).await.expect("pttl");
    let ttl = ttl.as_i64().expect("integer ttl");
    assert!((9_000..=10_000).contains(&ttl), "ttl {ttl}");
}

/// Keys and arguments arrive in order, integers as numbers; replies convert.
pub async fn keys_args_and_replies(backend: &dyn RedisBackend, key: &str) {
    let reply = backend
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

/// After `flush` (a `SCRIPT FLUSH`), `EVALSHA` fails with `NoScript` and
/// `run_script` falls back to `EVAL`, which caches the script again.
pub async fn noscript_fallback<F: Future<Output = ()>>(
    backend: &dyn RedisBackend,
    key: &str,
    flush: F,
) {
    assert!(backend.set_nx_px(key, "me", 10_000).await.expect("set"));
    flush.await;
    let err = backend
        .eval_sha(&MUTEX_RELEASE, &[key], &[Arg::Str("me")])
        .await;
    let err = err.expect_err("EVALSHA after SCRIPT FLUSH");
    assert_eq!(err.kind(), BackendErrorKind::NoScript, "{err}");
    let released = backend
        .run_script(&MUTEX_RELEASE, &[key], &[Arg::Str("me")])
        .await;
    assert_eq!(released.expect("release").as_i64(), Some(1));
    let again = backend
        .eval_sha(&MUTEX_RELEASE, &[key], &[Arg::Str("me")])
        .await;
    assert_eq!(again.expect("cached by EVAL").as_i64(), Some(0));
}

/// A Lua error reply and a failing `redis.call` are `Server` errors.
pub async fn lua_errors(backend: &dyn RedisBackend, key: &str) {
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

    assert!(backend
        .set_nx_px(key, "not a number", 10_000)
        .await
        .expect("set"));
    let err = backend
        .run_script(&BAD_CALL, &[key], &[])
        .await
        .expect_err("INCR on text");
    assert_eq!(err.kind(), BackendErrorKind::Server, "{err}");
}

/// Every check, on keys under `prefix`.
pub async fn all<F: Future<Output = ()>>(backend: &dyn RedisBackend, prefix: &str, flush: F) {
    set_nx_px(backend, &format!("{prefix}:set")).await;
    keys_args_and_replies(backend, &format!("{prefix}:echo")).await;
    noscript_fallback(backend, &format!("{prefix}:noscript"), flush).await;
    lua_errors(backend, &format!("{prefix}:lua")).await;
}
