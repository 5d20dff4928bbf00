//! Nodes, the script cache, expiry, inspection and statistics.

use std::time::Duration;

use futures::executor::block_on;
use redsem_core::script::{MUTEX_RELEASE, SEMAPHORE_ACQUIRE};
use redsem_core::{Arg, BackendErrorKind, RedisBackend, Reply};

use crate::MockBackend;

#[test]
fn evalsha_answers_noscript_until_eval_loads_the_script() {
    let redis = MockBackend::new();
    redis.set("k", "a");
    let args = [Arg::Str("a")];
    let err = block_on(redis.eval_sha(&MUTEX_RELEASE, &["k"], &args)).unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::NoScript);
    assert_eq!(
        err.message(),
        "NOSCRIPT No matching script. Please use EVAL."
    );
    assert!(redis.exists("k"), "NOSCRIPT runs nothing");
    assert_eq!(redis.script_calls("mutex_release"), 0);

    assert_eq!(
        block_on(redis.eval(&MUTEX_RELEASE, &["k"], &args)).unwrap(),
        Reply::Int(1)
    );
    assert!(redis.is_script_loaded(&MUTEX_RELEASE));
    assert!(!redis.is_script_loaded(&SEMAPHORE_ACQUIRE));
    assert_eq!(
        block_on(redis.eval_sha(&MUTEX_RELEASE, &["k"], &args)).unwrap(),
        Reply::Int(0)
    );
    assert_eq!(redis.calls(), 3);
    assert_eq!(redis.script_calls("mutex_release"), 2);

    // run_script: one call while cached, two after SCRIPT FLUSH.
    redis.reset_stats();
    block_on(redis.run_script(&MUTEX_RELEASE, &["k"], &args)).unwrap();
    assert_eq!(redis.calls(), 1);
    redis.flush_scripts();
    assert!(!redis.is_script_loaded(&MUTEX_RELEASE));
    block_on(redis.run_script(&MUTEX_RELEASE, &["k"], &args)).unwrap();
    assert_eq!(redis.calls(), 3);
}

#[test]
fn clones_share_a_node_and_new_nodes_share_nothing() {
    let a = MockBackend::new();
    let a2 = a.clone();
    let b = MockBackend::new();
    assert!(a.is_same_node(&a2));
    assert!(!a.is_same_node(&b));

    assert!(block_on(a2.set_nx_px("k", "v", 1_000)).unwrap());
    assert_eq!(a.get("k").as_deref(), Some("v"));
    assert!(!b.exists("k"));
    assert_eq!(a.calls(), 1);
    assert_eq!(b.calls(), 0);

    block_on(a.run_script(&MUTEX_RELEASE, &["x"], &[Arg::Str("v")])).unwrap();
    assert!(a2.is_script_loaded(&MUTEX_RELEASE));
    assert!(
        !b.is_script_loaded(&MUTEX_RELEASE),
        "each node has its own script cache"
    );

    a.advance(Duration::from_secs(60));
    assert!(
        a2.now_ms() - b.now_ms() >= 59_000,
        "each node has its own clock"
    );
    assert!(!a2.exists("k"));
}

#[test]
fn keys_expire_lazily_by_the_node_clock() {
    let redis = MockBackend::new();
    redis.set_with_ttl("short", "v", Duration::from_millis(100));
    redis.set_with_ttl("long", "v", Duration::from_millis(1_000));
    redis.set("forever", "v");
    redis.zadd("z", 0, "m");
    assert_eq!(redis.keys(), ["forever", "long", "short", "z"]);
    let ttl = redis.ttl("short").unwrap();
    assert!(ttl <= Duration::from_millis(100) && ttl >= Duration::from_millis(50));

    redis.advance(Duration::from_millis(100));
    assert!(!redis.exists("short"));
    assert_eq!(redis.get("short"), None);
    assert_eq!(redis.keys(), ["forever", "long", "z"]);
    redis.advance(Duration::from_secs(3_600));
    assert_eq!(redis.keys(), ["forever", "z"]);
    assert_eq!(redis.ttl("forever"), None, "no expiry");
    assert_eq!(redis.ttl("missing"), None, "no key");

    // An expired key is free for SET NX again.
    redis.set_with_ttl("k", "old", Duration::from_millis(10));
    redis.advance(Duration::from_millis(10));
    assert!(block_on(redis.set_nx_px("k", "new", 10)).unwrap());
    assert_eq!(redis.get("k").as_deref(), Some("new"));

    redis.set_with_ttl("zero", "v", Duration::ZERO);
    assert!(!redis.exists("zero"));
}

#[test]
fn inspection_and_setup() {
    let redis = MockBackend::new();
    redis.set_with_ttl("k", "a", Duration::from_secs(1));
    redis.set("k", "b");
    assert_eq!(redis.ttl("k"), None, "SET clears the TTL");
    assert!(redis.del("k"));
    assert!(!redis.del("k"));

    assert!(redis.zadd("z", 5, "b"));
    assert!(redis.zadd("z", 5, "a"));
    assert!(redis.zadd("z", 1, "c"));
    assert!(!redis.zadd("z", 9, "c"));
    assert_eq!(redis.zrange("z"), ["a", "b", "c"]);
    assert_eq!(
        redis.zrange_with_scores("z"),
        [
            ("a".to_owned(), 5),
            ("b".to_owned(), 5),
            ("c".to_owned(), 9)
        ]
    );
    assert_eq!(redis.zcard("z"), 3);
    assert_eq!(redis.get("z"), None, "not a string");

    redis.set("s", "v");
    assert!(redis.zrange("s").is_empty());
    assert_eq!(redis.zcard("s"), 0);
    assert!(redis.zadd("s", 1, "m"), "zadd replaces a string");
    assert_eq!(redis.zrange("s"), ["m"]);

    block_on(redis.run_script(&MUTEX_RELEASE, &["x"], &[Arg::Str("v")])).unwrap();
    redis.flush_all();
    assert!(redis.keys().is_empty());
    assert!(
        redis.is_script_loaded(&MUTEX_RELEASE),
        "FLUSHALL keeps the script cache"
    );
}

#[test]
fn statistics_count_calls_and_successful_scripts() {
    let redis = MockBackend::new();
    block_on(redis.set_nx_px("k", "v", 1_000)).unwrap();
    redis.fail_next(1);
    block_on(redis.set_nx_px("k", "v", 1_000)).unwrap_err();
    block_on(redis.run_script(&MUTEX_RELEASE, &["k"], &[Arg::Str("v")])).unwrap();
    assert_eq!(redis.calls(), 4, "failures and NOSCRIPT count as calls");
    assert_eq!(redis.script_calls("set_nx_px"), 1);
    assert_eq!(redis.script_calls("mutex_release"), 1);
    assert_eq!(redis.script_calls("nothing"), 0);
    redis.reset_stats();
    assert_eq!(redis.calls(), 0);
    assert_eq!(redis.script_calls("set_nx_px"), 0);
}

#[test]
fn debug_summarises_without_dumping_data() {
    let redis = MockBackend::new();
    redis.set("secret-key", "secret-value");
    let debug = format!("{redis:?}");
    assert!(debug.starts_with("MockBackend"));
    assert!(debug.contains("keys: 1"), "{debug}");
    assert!(!debug.contains("secret"), "{debug}");
}
