//! Holding and releasing a semaphore: members, identifiers, arguments,
//! waiting for a slot, attempt limits, sharing one instance.

use std::pin::pin;
use std::time::{Duration, Instant};

use redsem_core::{LockError, LockKind, LockOptions, Semaphore};

use super::{release_in_turn, sem, AnySem, KEY};
use crate::common::scenarios::support::{
    assert_attempt_limit, assert_busy_timeout, assert_default_ttl, assert_message,
    assert_one_attempt, assert_still_waiting, assert_uuid_with_suffix, count_holders,
    fixed_identifier, is_uuid_v4, observed_under_lock, rejected, single_attempt, sorted, waiting,
    zero_acquire_timeout,
};
use crate::common::timing::{ms, t};
use crate::common::Env;

/// SEM-02, SEM-15, WIRE-04/06: each holder is one member of the ZSET; an
/// empty ZSET is deleted.
pub async fn acquire_release(env: Env) {
    let node = env.node();
    let s1 = Semaphore::new(env.backend(), "key", 2).unwrap();
    let s2 = Semaphore::new(env.backend(), "key", 2).unwrap();
    assert_eq!(s1.key(), KEY);
    assert_eq!(s1.limit(), 2);
    let g1 = s1.acquire().await.unwrap();
    let g2 = s2.acquire().await.unwrap();
    assert!(g1.is_acquired() && g2.is_acquired());
    assert_eq!(g1.kind(), LockKind::Semaphore);
    assert_eq!(g1.key(), KEY);
    let (id1, id2) = (g1.identifier().to_owned(), g2.identifier().to_owned());
    assert_ne!(id1, id2);
    assert_eq!(sorted(node.zrange(KEY)), sorted([&id1, &id2]));
    assert_default_ttl(node.pttl(KEY));
    release_in_turn(node, g1, g2, &[id2]).await;
}

/// WIRE-13, LOCK-03: a fresh UUID v4 per acquisition, the suffix, the fixed
/// identifier.
pub async fn identifiers(env: Env) {
    let s = Semaphore::new(env.backend(), "key", 3).unwrap();
    assert_eq!(s.identifier(), None);
    let g = s.acquire().await.unwrap();
    assert!(is_uuid_v4(g.identifier()), "{}", g.identifier());
    assert_eq!(env.node().zrange(KEY), [g.identifier()]);
    g.release().await.unwrap();

    let options = LockOptions::builder()
        .identifier_suffix("abc")
        .build()
        .unwrap();
    let s = Semaphore::with_options(env.backend(), "key", 3, options).unwrap();
    let g = s.acquire().await.unwrap();
    assert_uuid_with_suffix(g.identifier(), "-abc");
    assert_eq!(env.node().zrange(KEY), [g.identifier()]);
    g.release().await.unwrap();

    let options = LockOptions::builder().identifier("abc").build().unwrap();
    let s = Semaphore::with_options(env.backend(), "key", 3, options).unwrap();
    assert_eq!(s.identifier(), Some("abc"));
    let g = s.acquire().await.unwrap();
    assert_eq!(g.identifier(), "abc");
    assert_eq!(env.node().zrange(KEY), ["abc"]);
    g.release().await.unwrap();
    assert!(env.node().zrange(KEY).is_empty());
}

/// SEM-01, GAP-02/03: bad arguments are build-time errors naming the
/// argument, and nothing reaches Redis.
pub async fn invalid_arguments(env: Env) {
    assert_eq!(rejected(Semaphore::new(env.backend(), "", 1)), "key");
    assert_eq!(rejected(Semaphore::new(env.backend(), "key", 0)), "limit");
    // GAP-02: a zero lock timeout would make PEXPIRE delete the key.
    assert_eq!(
        rejected(LockOptions::builder().lock_timeout(Duration::ZERO).build()),
        "lock_timeout"
    );
    // GAP-03: a refresh interval at or above the lock timeout comes too late.
    assert_eq!(
        rejected(
            LockOptions::builder()
                .lock_timeout(ms(100))
                .refresh_interval(ms(100))
                .build()
        ),
        "refresh_interval"
    );
    assert_eq!(env.node().pttl(KEY), -2);
}

/// SEM-03, LOCK-05, MSEM-03: `holder` fills the key; `waiter` times out
/// with its kind and the key in the message and leaves nothing behind; the
/// key is gone after release.
pub(crate) async fn busy_with(env: Env, holder: AnySem, waiter: AnySem) {
    let g1 = holder.acquire().await.unwrap();
    assert_busy_timeout(&env.time, waiter.acquire(), &waiter.timeout_message()).await;
    assert_eq!(
        sorted(env.node().zrange(KEY)),
        sorted(holder.members(g1.identifier())),
        "the loser left nothing behind"
    );
    g1.release().await.unwrap();
    assert_eq!(env.node().pttl(KEY), -2);
}

/// SEM-03, LOCK-05.
pub async fn acquire_times_out_when_busy(env: Env) {
    let (holder, waiter) = (AnySem::new(&env, 1, 0, t()), AnySem::new(&env, 1, 0, t()));
    busy_with(env, holder, waiter).await;
}

/// SEM-04, MSEM-04: cancelling a waiting acquire is dropping its future;
/// nothing of the waiter stays behind.
pub(crate) async fn cancel_waiting_with(env: Env, limit: u32, permits: u32) {
    let holder = AnySem::new(&env, limit, permits, t());
    let g1 = holder.acquire().await.unwrap();
    let waiter = AnySem::new(&env, limit, permits, waiting(Duration::from_secs(60)));
    let start = env.time.now();
    let acquire = pin!(waiter.acquire());
    assert_still_waiting(&env.time, acquire, "no slot was free").await;
    assert!(env.time.since(start) < Duration::from_secs(5));
    assert_eq!(
        sorted(env.node().zrange(KEY)),
        sorted(holder.members(g1.identifier()))
    );
    g1.release().await.unwrap();
    env.time.sleep(ms(100)).await;
    assert_eq!(
        env.node().pttl(KEY),
        -2,
        "the cancelled waiter must not take a slot later"
    );
}

/// SEM-04.
pub async fn dropping_a_waiting_acquire_cancels_it(env: Env) {
    cancel_waiting_with(env, 1, 0).await;
}

/// SEM-16/17, redsem: `try_acquire` is one attempt; one instance without a
/// fixed identifier takes a new slot (a new member) per acquisition.
pub async fn try_acquire(env: Env) {
    let s = sem(&env, 2);
    let g1 = s.try_acquire().await.unwrap().expect("free slot");
    let g2 = s.try_acquire().await.unwrap().expect("second slot");
    assert_ne!(
        g1.identifier(),
        g2.identifier(),
        "each acquisition is its own member"
    );
    assert_eq!(
        sorted(env.node().zrange(KEY)),
        sorted([g1.identifier(), g2.identifier()])
    );
    let start = env.time.now();
    assert!(s.try_acquire().await.unwrap().is_none());
    assert!(sem(&env, 2).try_acquire().await.unwrap().is_none());
    assert!(
        env.time.since(start) < ms(140),
        "try_acquire must not wait for the acquire timeout"
    );
    assert_eq!(env.node().zrange(KEY).len(), 2);
    let id2 = g2.identifier().to_owned();
    release_in_turn(env.node(), g1, g2, &[id2]).await;
}

/// SEM-18, MSEM-19, GAP-04: one attempt with an unlimited acquire timeout
/// terminates; a zero acquire timeout makes exactly one attempt.
pub(crate) async fn attempt_limit_with(env: Env, limit: u32, permits: u32) {
    let holders = AnySem::new(&env, limit, permits, t());
    let mut guards = Vec::new();
    while let Some(g) = holders.try_acquire().await.unwrap() {
        guards.push(g);
    }
    let full = sorted(env.node().zrange(KEY));
    let third = AnySem::new(&env, limit, permits, single_attempt());
    let err = third.acquire().await.unwrap_err();
    assert_attempt_limit(&err);
    assert_message(&err, &third.timeout_message());
    let err = AnySem::new(&env, limit, permits, zero_acquire_timeout())
        .acquire()
        .await
        .unwrap_err();
    assert_one_attempt(&err);
    assert_eq!(
        sorted(env.node().zrange(KEY)),
        full,
        "failed attempts change nothing"
    );
    for g in guards {
        g.release().await.unwrap();
    }
}

/// SEM-17/18.
pub async fn attempt_limit(env: Env) {
    attempt_limit_with(env, 2, 0).await;
}

/// Keys are independent.
pub async fn keys_are_independent(env: Env) {
    let a = Semaphore::with_options(env.backend(), "key1", 1, t()).unwrap();
    let b = Semaphore::with_options(env.backend(), "key2", 1, t()).unwrap();
    let (ga, gb) = futures::join!(a.acquire(), b.acquire());
    let (ga, gb) = (ga.unwrap(), gb.unwrap());
    assert_eq!(env.node().zrange("semaphore:key1"), [ga.identifier()]);
    assert_eq!(env.node().zrange("semaphore:key2"), [gb.identifier()]);
    assert!(a.try_acquire().await.unwrap().is_none());
    ga.release().await.unwrap();
    gb.release().await.unwrap();
}

/// GAP-22: dropping a guard releases its slot in the background, promptly.
pub async fn drop_releases(env: Env) {
    let s = sem(&env, 2);
    let keep = s.acquire().await.unwrap();
    let g = s.acquire().await.unwrap();
    drop(g);
    let node = env.node();
    env.time
        .wait_until(
            "the dropped guard's release",
            Duration::from_secs(2),
            || node.zrange(KEY).len() == 1,
        )
        .await;
    assert_eq!(node.zrange(KEY), [keep.identifier()]);
    keep.release().await.unwrap();
}

/// The scoped form runs the work under the semaphore and releases after.
pub async fn with_lock_runs_and_releases(env: Env) {
    let s = sem(&env, 2);
    let node = env.nodes[0].clone();
    let seen = observed_under_lock(
        &env.time,
        move || node.zrange(KEY),
        |work| s.with_lock(|| work),
    )
    .await;
    assert_eq!(seen.len(), 1, "the work ran while holding one slot");
    assert_eq!(env.node().pttl(KEY), -2);
}

/// GAP-06/17: one instance with a fixed identifier holds one slot at a
/// time.
pub async fn fixed_identifier_holds_once(env: Env) {
    let s = Semaphore::with_options(env.backend(), "key", 3, fixed_identifier("solo")).unwrap();
    let g = s.acquire().await.unwrap();
    let err = s.try_acquire().await.unwrap_err();
    assert!(matches!(err, LockError::AlreadyHeld { .. }), "{err}");
    let err = s.acquire().await.unwrap_err();
    assert!(matches!(err, LockError::AlreadyHeld { .. }), "{err}");
    assert_eq!(env.node().zrange(KEY), ["solo"]);
    g.release().await.unwrap();
    let g = s.acquire().await.unwrap();
    assert_eq!(env.node().zrange(KEY), ["solo"]);
    g.release().await.unwrap();
}

/// Tasks sharing one instance never hold more than the limit at once.
pub(crate) async fn shared_instance_respects_limit_with(env: Env, limit: u32, permits: u32) {
    let lock = AnySem::new(&env, limit, permits, waiting(Duration::from_secs(20)));
    let most = (limit / permits.max(1)) as usize;
    let peak = count_holders(&env.time, 8, 5, ms(3), most, || lock.acquire()).await;
    assert!(peak >= 2.min(most), "the tasks never overlapped");
    assert_eq!(env.node().pttl(KEY), -2);
}

/// Tasks sharing one instance never hold more than the limit at once.
pub async fn shared_instance_respects_limit(env: Env) {
    shared_instance_respects_limit_with(env, 3, 0).await;
}
