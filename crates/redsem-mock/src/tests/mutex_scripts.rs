//! The mutex scripts, run from their Lua source, and `set_nx_px`.

use std::time::Duration;

use futures::executor::block_on;
use redsem_core::script::{
    FENCE as FENCE_SCRIPT, MUTEX_ACQUIRE, MUTEX_FENCED_ACQUIRE, MUTEX_REFRESH, MUTEX_RELEASE,
};
use redsem_core::{Arg, BackendErrorKind, RedisBackend, Reply, Script};

use super::{assert_ttl, run};
use crate::MockBackend;

const KEY: &str = "mutex:k";

#[test]
fn acquire_script_is_set_nx_px() {
    let redis = MockBackend::new();
    assert_eq!(
        run(
            &redis,
            &MUTEX_ACQUIRE,
            KEY,
            &[Arg::Str("a"), Arg::Int(1_000)]
        ),
        1
    );
    assert_eq!(
        run(
            &redis,
            &MUTEX_ACQUIRE,
            KEY,
            &[Arg::Str("b"), Arg::Int(1_000)]
        ),
        0
    );
    assert_eq!(redis.get(KEY).as_deref(), Some("a"));
    assert_ttl(&redis, KEY, 1_000);
    assert_eq!(redis.script_calls("mutex_acquire"), 2);

    // Numbers may arrive as strings, as Redis receives them.
    redis.advance(Duration::from_secs(1));
    assert_eq!(
        run(
            &redis,
            &MUTEX_ACQUIRE,
            KEY,
            &[Arg::Str("b"), Arg::Str("500")]
        ),
        1
    );
    assert_ttl(&redis, KEY, 500);
}

#[test]
fn acquire_rejects_a_ttl_redis_rejects() {
    let redis = MockBackend::new();
    for ttl in [0, -5] {
        let err =
            block_on(redis.run_script(&MUTEX_ACQUIRE, &[KEY], &[Arg::Str("a"), Arg::Int(ttl)]))
                .unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Server);
        assert!(err.message().contains("invalid expire time"), "{err}");
    }
    let err = block_on(redis.set_nx_px(KEY, "a", 0)).unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Server);
    let err = block_on(redis.run_script(&MUTEX_ACQUIRE, &[KEY], &[Arg::Str("a"), Arg::Str("x")]))
        .unwrap_err();
    assert!(
        err.message()
            .starts_with("ERR value is not an integer or out of range script: "),
        "{err}"
    );
    assert!(redis.keys().is_empty());
}

#[test]
fn native_set_nx_px_bypasses_the_script_cache() {
    let redis = MockBackend::new();
    assert!(block_on(redis.set_nx_px(KEY, "a", 100)).unwrap());
    assert!(!block_on(redis.set_nx_px(KEY, "b", 100)).unwrap());
    assert_eq!(redis.calls(), 2);
    assert_eq!(redis.script_calls("set_nx_px"), 2);
    assert_eq!(redis.script_calls("mutex_acquire"), 0);
    assert!(!redis.is_script_loaded(&MUTEX_ACQUIRE));
    redis.advance(Duration::from_millis(100));
    assert!(block_on(redis.set_nx_px(KEY, "b", 100)).unwrap());
    assert_eq!(redis.get(KEY).as_deref(), Some("b"));
}

#[test]
fn refresh_only_when_the_value_matches() {
    let redis = MockBackend::new();
    assert_eq!(
        run(
            &redis,
            &MUTEX_REFRESH,
            KEY,
            &[Arg::Str("a"), Arg::Int(5_000)]
        ),
        0
    );
    assert!(!redis.exists(KEY), "refresh never creates the key");

    redis.set_with_ttl(KEY, "a", Duration::from_millis(1_000));
    assert_eq!(
        run(
            &redis,
            &MUTEX_REFRESH,
            KEY,
            &[Arg::Str("b"), Arg::Int(5_000)]
        ),
        0
    );
    assert_ttl(&redis, KEY, 1_000);

    assert_eq!(
        run(
            &redis,
            &MUTEX_REFRESH,
            KEY,
            &[Arg::Str("a"), Arg::Int(5_000)]
        ),
        1
    );
    assert_ttl(&redis, KEY, 5_000);
    redis.advance(Duration::from_millis(4_500));
    assert!(redis.exists(KEY));
    redis.advance(Duration::from_millis(500));
    assert_eq!(
        run(
            &redis,
            &MUTEX_REFRESH,
            KEY,
            &[Arg::Str("a"), Arg::Int(5_000)]
        ),
        0
    );

    // PEXPIRE also gives a key without expiry one.
    redis.set(KEY, "a");
    assert_eq!(redis.ttl(KEY), None);
    assert_eq!(
        run(&redis, &MUTEX_REFRESH, KEY, &[Arg::Str("a"), Arg::Int(300)]),
        1
    );
    assert_ttl(&redis, KEY, 300);
}

#[test]
fn refresh_with_a_non_positive_ttl_deletes_like_pexpire() {
    let redis = MockBackend::new();
    redis.set(KEY, "a");
    assert_eq!(
        run(&redis, &MUTEX_REFRESH, KEY, &[Arg::Str("a"), Arg::Int(0)]),
        1
    );
    assert!(!redis.exists(KEY));
}

#[test]
fn release_only_when_the_value_matches() {
    let redis = MockBackend::new();
    assert_eq!(run(&redis, &MUTEX_RELEASE, KEY, &[Arg::Str("a")]), 0);
    redis.set(KEY, "a");
    assert_eq!(run(&redis, &MUTEX_RELEASE, KEY, &[Arg::Str("b")]), 0);
    assert!(redis.exists(KEY));
    assert_eq!(run(&redis, &MUTEX_RELEASE, KEY, &[Arg::Str("a")]), 1);
    assert!(!redis.exists(KEY));
    assert_eq!(run(&redis, &MUTEX_RELEASE, KEY, &[Arg::Str("a")]), 0);
    // An integer identifier compares as its decimal string.
    redis.set(KEY, "42");
    assert_eq!(run(&redis, &MUTEX_RELEASE, KEY, &[Arg::Int(42)]), 1);
}

#[test]
fn wrong_type_and_missing_keys_are_server_errors() {
    let redis = MockBackend::new();
    redis.zadd(KEY, 1, "m");
    let err = block_on(redis.run_script(&MUTEX_RELEASE, &[KEY], &[Arg::Str("a")])).unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Server);
    assert!(err.message().starts_with("WRONGTYPE"), "{err}");
    assert!(
        !block_on(redis.set_nx_px(KEY, "a", 100)).unwrap(),
        "NX sees a key of any type"
    );

    // KEYS[1] missing: redis.call('GET', nil).
    let err = block_on(redis.run_script(&MUTEX_RELEASE, &[], &[Arg::Str("a")])).unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Server);
    assert!(
        err.message()
            .starts_with("ERR Lua redis lib command arguments must be strings or integers"),
        "{err}"
    );
    // ARGV[1] missing: the comparison is false, as in Redis.
    redis.set(KEY, "a");
    assert_eq!(run(&redis, &MUTEX_RELEASE, KEY, &[]), 0);
    assert_eq!(
        redis.script_calls("mutex_release"),
        1,
        "failed runs are not counted"
    );
}

#[test]
fn a_script_runs_by_its_source_not_its_name() {
    // Same name as a redsem script, different source: the source runs.
    static IMPOSTOR: Script = Script::new("mutex_release", "return 7");

    let redis = MockBackend::new();
    redis.set(KEY, "a");
    assert_eq!(run(&redis, &IMPOSTOR, KEY, &[Arg::Str("a")]), 7);
    assert!(redis.exists(KEY));
    assert!(redis.is_script_loaded(&IMPOSTOR));
    assert!(!redis.is_script_loaded(&MUTEX_RELEASE));
    assert_eq!(run(&redis, &MUTEX_RELEASE, KEY, &[Arg::Str("a")]), 1);
    assert_eq!(redis.script_calls("mutex_release"), 2, "counted by name");
}

/// `mutex_fenced_acquire` with ARGV = [identifier, lockTimeoutMs, floor].
fn fenced_acquire(redis: &MockBackend, id: &str, floor: i64) -> Reply {
    let args = [Arg::Str(id), Arg::Int(1_000), Arg::Int(floor)];
    block_on(redis.run_script(&MUTEX_FENCED_ACQUIRE, &[KEY, FENCE], &args)).unwrap()
}

/// `fence` with ARGV = [member, target, mode].
fn fence(redis: &MockBackend, id: &str, target: i64, mode: &str) -> Reply {
    let args = [Arg::Str(id), Arg::Int(target), Arg::Str(mode)];
    block_on(redis.run_script(&FENCE_SCRIPT, &[KEY, FENCE], &args)).unwrap()
}

const FENCE: &str = "{mutex:k}:fence";

#[test]
fn fenced_acquire_counts_only_acquisitions_and_honours_a_floor() {
    let redis = MockBackend::new();
    assert_eq!(fenced_acquire(&redis, "a", 0), Reply::Int(1));
    assert_eq!(
        fenced_acquire(&redis, "b", 0),
        Reply::Int(0),
        "busy: no token"
    );
    assert_eq!(redis.get(FENCE).as_deref(), Some("1"));
    redis.del(KEY);
    assert_eq!(
        fenced_acquire(&redis, "b", 7),
        Reply::Int(7),
        "raised to the floor"
    );
    redis.del(KEY);
    assert_eq!(
        fenced_acquire(&redis, "c", 3),
        Reply::Int(8),
        "a lower floor still counts up"
    );
    assert_eq!(redis.ttl(FENCE), None, "the counter never expires");
}

#[test]
fn fence_issues_and_raises_only_for_the_holder() {
    let redis = MockBackend::new();
    assert_eq!(fenced_acquire(&redis, "a", 0), Reply::Int(1));
    assert_eq!(
        fence(&redis, "x", 9, "issue"),
        Reply::Int(0),
        "not the holder"
    );
    assert_eq!(fence(&redis, "a", 0, "issue"), Reply::Int(2));
    assert_eq!(fence(&redis, "a", 5, "raise"), Reply::Int(5));
    assert_eq!(
        fence(&redis, "a", 5, "raise"),
        Reply::Int(-5),
        "already there: not confirmed"
    );
    assert_eq!(fence(&redis, "a", 4, "raise"), Reply::Int(-5));
    assert_eq!(redis.get(FENCE).as_deref(), Some("5"));
}
