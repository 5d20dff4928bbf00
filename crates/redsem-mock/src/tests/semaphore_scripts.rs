//! The semaphore scripts, run from their Lua source.

use std::time::Duration;

use redsem_core::script::{SEMAPHORE_ACQUIRE, SEMAPHORE_REFRESH, SEMAPHORE_RELEASE};
use redsem_core::{Arg, Reply};

use futures::executor::block_on;
use redsem_core::RedisBackend;

use super::{assert_ttl, run};
use crate::data::Keyspace;
use crate::lua::Scripts;
use crate::zset::Score;
use crate::MockBackend;

const KEY: &str = "semaphore:k";
const FENCE: &str = "{semaphore:k}:fence";
const TTL: i64 = 10_000;

/// ARGV = [limit, permits, identifier, lockTimeoutMs, floor]: the fencing
/// token, or 0 when full.
fn acquire_token(redis: &MockBackend, limit: i64, permits: i64, id: &str, floor: i64) -> i64 {
    let args = [
        Arg::Int(limit),
        Arg::Int(permits),
        Arg::Str(id),
        Arg::Int(TTL),
        Arg::Int(floor),
    ];
    match block_on(redis.run_script(&SEMAPHORE_ACQUIRE, &[KEY, FENCE], &args)).unwrap() {
        Reply::Int(n) => n,
        other => panic!("semaphore_acquire returned {other:?}"),
    }
}

/// 1 when acquired, 0 when full.
fn acquire(redis: &MockBackend, limit: i64, permits: i64, id: &str) -> i64 {
    acquire_token(redis, limit, permits, id, 0).min(1)
}

#[test]
fn each_acquire_gets_a_greater_token_and_a_floor_lifts_it() {
    let redis = MockBackend::new();
    assert_eq!(acquire_token(&redis, 3, 0, "a", 0), 1);
    assert_eq!(acquire_token(&redis, 3, 0, "b", 0), 2);
    assert_eq!(
        acquire_token(&redis, 3, 0, "c", 10),
        10,
        "raised to the floor"
    );
    assert_eq!(
        acquire_token(&redis, 3, 0, "d", 5),
        0,
        "full: no token, no count"
    );
    assert_eq!(redis.get(FENCE).as_deref(), Some("10"));
    assert_eq!(redis.ttl(FENCE), None, "the counter never expires");
}

/// ARGV = [permits, identifier, lockTimeoutMs].
fn refresh(redis: &MockBackend, permits: i64, id: &str) -> i64 {
    run(
        redis,
        &SEMAPHORE_REFRESH,
        KEY,
        &[Arg::Int(permits), Arg::Str(id), Arg::Int(TTL)],
    )
}

/// ARGV = [permits, identifier].
fn release(redis: &MockBackend, permits: i64, id: &str) -> i64 {
    run(
        redis,
        &SEMAPHORE_RELEASE,
        KEY,
        &[Arg::Int(permits), Arg::Str(id)],
    )
}

#[test]
fn acquire_respects_the_limit_and_scores_with_the_node_clock() {
    let redis = MockBackend::new();
    redis.advance(Duration::from_secs(3_600)); // scores follow the node clock, not the wall clock
    let before = redis.now_ms();
    assert_eq!(acquire(&redis, 2, 0, "a"), 1);
    assert_eq!(acquire(&redis, 2, 0, "b"), 1);
    assert_eq!(acquire(&redis, 2, 0, "c"), 0);
    let after = redis.now_ms();
    assert_eq!(redis.zrange(KEY).len(), 2);
    for (member, score) in redis.zrange_with_scores(KEY) {
        assert!(["a", "b"].contains(&member.as_str()));
        assert!(
            (before..=after).contains(&score),
            "{score} not in {before}..={after}"
        );
    }
    assert_ttl(&redis, KEY, TTL as u64);
    // The Lua counts the needed slot even when the identifier already holds one.
    assert_eq!(acquire(&redis, 2, 0, "a"), 0);
}

#[test]
fn multi_semaphore_members_are_numbered() {
    let redis = MockBackend::new();
    assert_eq!(acquire(&redis, 5, 3, "a"), 1);
    assert_eq!(redis.zrange(KEY), ["a_0", "a_1", "a_2"]);
    assert_eq!(acquire(&redis, 5, 3, "b"), 0, "3 + 3 > 5");
    assert_eq!(acquire(&redis, 5, 2, "b"), 1);
    assert_eq!(redis.zcard(KEY), 5);
    assert_eq!(acquire(&redis, 5, 1, "c"), 0);
}

#[test]
fn expired_holders_are_pruned() {
    let redis = MockBackend::new();
    assert_eq!(acquire(&redis, 1, 0, "a"), 1);
    redis.advance(Duration::from_millis(TTL as u64 / 2));
    assert_eq!(acquire(&redis, 1, 0, "b"), 0);
    assert_eq!(refresh(&redis, 0, "a"), 1); // scored anew, TTL anew
    redis.advance(Duration::from_millis(TTL as u64 / 2));
    assert_eq!(acquire(&redis, 1, 0, "b"), 0);
    redis.advance(Duration::from_millis(TTL as u64 / 2));
    assert_eq!(acquire(&redis, 1, 0, "b"), 1);
    assert_eq!(redis.zrange(KEY), ["b"]);

    // A stale member planted by hand is pruned on the next acquire.
    redis.zadd(KEY, redis.now_ms() - TTL - 1, "stale");
    assert_eq!(redis.zcard(KEY), 2);
    assert_eq!(acquire(&redis, 2, 0, "c"), 1);
    assert_eq!(redis.zrange(KEY), ["b", "c"]);
}

#[test]
fn pruning_includes_members_exactly_ttl_old() {
    // Through the script engine directly, to pin `now`.
    let mut data = Keyspace::default();
    let now = 1_000_000;
    {
        let z = data.zset_or_create(KEY.as_bytes(), now).unwrap();
        z.add(b"edge", Score::new((now - TTL) as f64).unwrap());
        z.add(b"inside", Score::new((now - TTL + 1) as f64).unwrap());
    }
    let mut scripts = Scripts::default();
    scripts.load(&SEMAPHORE_ACQUIRE).unwrap();
    let args = [
        Arg::Int(2),
        Arg::Int(0),
        Arg::Str("new"),
        Arg::Int(TTL),
        Arg::Int(0),
    ];
    let reply = scripts
        .run(
            SEMAPHORE_ACQUIRE.sha1(),
            &mut data,
            now,
            &[KEY, FENCE],
            &args,
        )
        .unwrap()
        .unwrap();
    assert_eq!(reply, Reply::Int(1));
    let members: Vec<_> = data
        .zset(KEY.as_bytes(), now)
        .unwrap()
        .unwrap()
        .iter()
        .map(|(m, s)| (String::from_utf8_lossy(m).into_owned(), s as i64))
        .collect();
    assert_eq!(
        members,
        [
            ("inside".to_owned(), now - TTL + 1),
            ("new".to_owned(), now)
        ]
    );
    assert_eq!(data.expiry(KEY.as_bytes(), now), Some(Some(now + TTL)));
}

#[test]
fn refresh_needs_every_member() {
    let redis = MockBackend::new();
    assert_eq!(refresh(&redis, 0, "a"), 0);
    assert_eq!(refresh(&redis, 2, "a"), 0);
    assert!(redis.keys().is_empty(), "a failed refresh creates nothing");

    assert_eq!(acquire(&redis, 10, 3, "a"), 1);
    let first = redis.zrange_with_scores(KEY);
    redis.advance(Duration::from_millis(1_000));
    assert_eq!(refresh(&redis, 3, "a"), 1);
    let refreshed = redis.zrange_with_scores(KEY);
    assert_eq!(refreshed.len(), 3);
    for ((_, old), (_, new)) in first.iter().zip(&refreshed) {
        assert!(new - old >= 1_000, "scores move to now");
    }
    assert_ttl(&redis, KEY, TTL as u64);

    // One member gone: the hold is not refreshed, and nothing is re-added.
    redis.advance(Duration::from_millis(1_000));
    redis.zadd(KEY, 0, "a_1"); // ancient: pruned by the refresh
    assert_eq!(refresh(&redis, 3, "a"), 0);
    assert_eq!(redis.zrange(KEY), ["a_0", "a_2"]);
    let ttl = redis.ttl(KEY).unwrap();
    assert!(
        ttl <= Duration::from_millis(TTL as u64 - 1_000),
        "no PEXPIRE on failure"
    );

    // Plain semaphore members are not numbered.
    assert_eq!(refresh(&redis, 0, "a_0"), 1);
}

#[test]
fn release_returns_the_number_removed() {
    let redis = MockBackend::new();
    assert_eq!(release(&redis, 0, "a"), 0);
    assert_eq!(acquire(&redis, 10, 0, "a"), 1);
    assert_eq!(acquire(&redis, 10, 3, "b"), 1);
    assert_eq!(
        release(&redis, 0, "b"),
        0,
        "permits 0 removes only the bare identifier"
    );
    assert_eq!(release(&redis, 0, "a"), 1);
    assert_eq!(release(&redis, 1, "b"), 1, "permits 1 removes b_0 only");
    assert_eq!(redis.zrange(KEY), ["b_1", "b_2"]);
    assert_eq!(release(&redis, 3, "b"), 2);
    assert!(!redis.exists(KEY), "an emptied sorted set disappears");
    assert_eq!(redis.script_calls("semaphore_release"), 5);
    assert_eq!(release(&redis, 3, "b"), 0);
}

#[test]
fn the_set_expires_with_its_last_holder() {
    let redis = MockBackend::new();
    assert_eq!(acquire(&redis, 3, 0, "a"), 1);
    redis.advance(Duration::from_millis(TTL as u64));
    assert!(!redis.exists(KEY));
    assert_eq!(redis.zcard(KEY), 0);
}
