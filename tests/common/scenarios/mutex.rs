//! Mutex behaviours (redis-semaphore MUTEX-*, LOCK-*, WIRE-01..03) plus
//! redsem's own guarantees.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redsem_core::{LockError, LockKind, LockOptions, LostReason, Mutex};

use super::support::{
    assert_attempt_limit, assert_busy_timeout, assert_default_ttl, assert_lost, assert_one_attempt,
    assert_still_waiting, assert_uuid_with_suffix, assert_work_dropped_on_loss, count_holders,
    fixed_identifier, is_uuid_v4, no_refresh, observed_under_lock, rejected, single_attempt,
    takeover, waiting, zero_acquire_timeout, Backend, LossCount, Paused,
};
use crate::common::timing::{ms, t, t_builder, NOTICE, OUTLIVE};
use crate::common::Env;

const KEY: &str = "mutex:key";

/// A mutex on `key` with `options`.
fn mutex(env: &Env, options: LockOptions) -> Mutex<Backend> {
    Mutex::with_options(env.backend(), "key", options).unwrap()
}

/// MUTEX-06, WIRE-01: the key holds the identifier while held, then is gone.
pub async fn acquire_release(env: Env) {
    let node = env.node();
    let m = Mutex::new(env.backend(), "key").unwrap();
    let guard = m.acquire().await.unwrap();
    assert!(guard.is_acquired());
    assert_eq!(guard.kind(), LockKind::Mutex);
    assert_eq!(node.get(KEY).as_deref(), Some(guard.identifier()));
    assert_default_ttl(node.pttl(KEY));
    guard.release().await.unwrap();
    assert_eq!(node.get(KEY), None);
}

/// MUTEX-03/04/05, WIRE-13: identifiers.
pub async fn identifiers(env: Env) {
    let m = Mutex::new(env.backend(), "key").unwrap();
    assert_eq!(m.identifier(), None);
    let g = m.acquire().await.unwrap();
    assert!(is_uuid_v4(g.identifier()), "{}", g.identifier());
    g.release().await.unwrap();

    let options = LockOptions::builder()
        .identifier_suffix("abc")
        .build()
        .unwrap();
    let g = mutex(&env, options).acquire().await.unwrap();
    assert_uuid_with_suffix(g.identifier(), "-abc");
    g.release().await.unwrap();

    let options = LockOptions::builder().identifier("abc").build().unwrap();
    let fixed = mutex(&env, options);
    assert_eq!(fixed.identifier(), Some("abc"));
    let g = fixed.acquire().await.unwrap();
    assert_eq!(g.identifier(), "abc");
    assert_eq!(env.node().get(KEY).as_deref(), Some("abc"));
    g.release().await.unwrap();
}

/// MUTEX-01 (keys): an empty key is an error that names the key.
pub async fn empty_key_is_rejected(env: Env) {
    assert_eq!(rejected(Mutex::new(env.backend(), "")), "key");
}

/// MUTEX-07: a busy mutex times out with the kind and key in the message.
pub async fn acquire_times_out_when_busy(env: Env) {
    let m1 = mutex(&env, t());
    let m2 = mutex(&env, t());
    let g1 = m1.acquire().await.unwrap();
    assert_busy_timeout(&env.time, m2.acquire(), "Acquire mutex mutex:key timeout").await;
    assert_eq!(env.node().get(KEY).as_deref(), Some(g1.identifier()));
    g1.release().await.unwrap();
    assert_eq!(env.node().get(KEY), None);
}

/// MUTEX-08: cancelling a waiting acquire is dropping its future; nothing
/// of the waiter stays behind.
pub async fn dropping_a_waiting_acquire_cancels_it(env: Env) {
    let m1 = mutex(&env, t());
    let waiter = mutex(&env, waiting(Duration::from_secs(60)));
    let g1 = m1.acquire().await.unwrap();
    let start = env.time.now();
    let acquire = pin!(waiter.acquire());
    assert_still_waiting(&env.time, acquire, "the mutex was held").await;
    assert!(env.time.since(start) < Duration::from_secs(5));
    assert_eq!(env.node().get(KEY).as_deref(), Some(g1.identifier()));
    g1.release().await.unwrap();
    env.time.sleep(ms(50)).await;
    assert_eq!(
        env.node().get(KEY),
        None,
        "the cancelled waiter must not take the lock later"
    );
}

/// MUTEX-09/10, MUTEX-24: try_acquire makes one attempt and is not an error
/// when busy.
pub async fn try_acquire(env: Env) {
    let m1 = mutex(&env, t());
    let m2 = mutex(&env, t());
    let g1 = m1.try_acquire().await.unwrap().expect("free mutex");
    let start = env.time.now();
    assert!(m2.try_acquire().await.unwrap().is_none());
    assert!(
        env.time.since(start) < ms(140),
        "try_acquire must not wait for the acquire timeout"
    );
    g1.release().await.unwrap();
    assert_eq!(env.node().get(KEY), None);
}

/// MUTEX-11: refresh keeps the lock past its lock timeout.
pub async fn refresh_keeps_the_lock(env: Env) {
    let m = mutex(&env, t());
    let g = m.acquire().await.unwrap();
    env.time.sleep(OUTLIVE).await;
    assert_eq!(env.node().get(KEY).as_deref(), Some(g.identifier()));
    assert!(g.is_acquired());
    g.release().await.unwrap();
    assert_eq!(env.node().get(KEY), None);
}

/// MUTEX-12: after stop_refresh the lock expires, and the guard says so.
pub async fn stop_refresh_lets_it_expire(env: Env) {
    let m = mutex(&env, t());
    let g = m.acquire().await.unwrap();
    g.stop_refresh();
    env.time.sleep(OUTLIVE).await;
    assert_eq!(env.node().get(KEY), None);
    assert!(!g.is_acquired());
    assert_lost!(g.lost().await, LostReason::Expired);
}

/// MUTEX-14/15: a hold made elsewhere is taken over with one refresh, and
/// kept alive with the new lock timeout.
pub async fn acquired_externally(env: Env) {
    let ext = mutex(&env, no_refresh().build().unwrap());
    // the other process hands its hold over without releasing it
    let id = ext.acquire().await.unwrap().detach();

    let local = mutex(&env, takeover(&id));
    let g = local.acquire().await.unwrap();
    assert_eq!(g.identifier(), id);
    env.time.sleep(OUTLIVE).await;
    assert_eq!(
        env.node().get(KEY).as_deref(),
        Some(id.as_str()),
        "kept alive by local's refresh"
    );
    g.release().await.unwrap();
    assert_eq!(env.node().get(KEY), None);

    // The flag is spent: the next acquire is a normal one.
    let g = local.acquire().await.unwrap();
    assert_eq!(env.node().get(KEY).as_deref(), Some(id.as_str()));
    g.release().await.unwrap();
}

/// Taking over a hold that is gone fails (one attempt, no waiting).
pub async fn acquired_externally_but_gone(env: Env) {
    let local = mutex(&env, takeover("nobody"));
    assert!(local.try_acquire().await.unwrap().is_none());
    let err = local.acquire().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(env.node().get(KEY), None);
}

async fn lost_when(env: Env, tamper: impl FnOnce(&Env)) {
    let lost = LossCount::default();
    let m = mutex(&env, lost.t());
    let g = m.acquire().await.unwrap();
    tamper(&env);
    env.time.sleep(NOTICE).await;
    assert!(!g.is_acquired());
    assert_eq!(lost.get(), 1, "the loss is reported exactly once");
    let err = g.lost().await;
    assert!(
        err.to_string().starts_with("Lost mutex for key mutex:key"),
        "{err}"
    );
    env.time.sleep(ms(250)).await;
    assert_eq!(lost.get(), 1, "no second report");
    let err = g.release().await.unwrap_err();
    assert!(err.is_lost(), "release reports the loss too: {err}");
}

/// MUTEX-16/18: another identifier took the key.
pub async fn lost_when_taken(env: Env) {
    lost_when(env, |env| env.node().set(KEY, "222")).await;
    // (the other holder's value is untouched by our release)
}

/// MUTEX-17/19: the key vanished.
pub async fn lost_when_deleted(env: Env) {
    lost_when(env, |env| env.node().del(KEY)).await;
}

/// MUTEX-20: reuse over several lifecycles; a released lock never comes back.
pub async fn reuse(env: Env) {
    let m = mutex(&env, t());
    for _ in 0..3 {
        let g = m.acquire().await.unwrap();
        env.time.sleep(ms(300)).await;
        assert_eq!(env.node().get(KEY).as_deref(), Some(g.identifier()));
        g.release().await.unwrap();
        assert_eq!(env.node().get(KEY), None);
        env.time.sleep(ms(300)).await;
        assert_eq!(env.node().get(KEY), None, "no resurrection after release");
    }
}

/// MUTEX-21: the node crashes and comes back empty: the loss is reported,
/// nothing is re-created, and a new lock works.
pub async fn node_restart(env: Env) {
    let lost = LossCount::default();
    let m = mutex(&env, lost.t());
    let g = m.acquire().await.unwrap();
    env.node().stop();
    env.time.sleep(Duration::from_secs(1)).await;
    env.node().start();
    env.time.sleep(Duration::from_secs(1)).await;
    assert_eq!(
        env.node().get(KEY),
        None,
        "refresh must not re-create the key"
    );
    assert_eq!(lost.get(), 1);
    assert!(!g.is_acquired());
    let other = mutex(&env, t());
    let g2 = other.acquire().await.unwrap();
    assert_eq!(env.node().get(KEY).as_deref(), Some(g2.identifier()));
    assert!(g.release().await.unwrap_err().is_lost());
    g2.release().await.unwrap();
}

/// MUTEX-25: one attempt with an unlimited acquire timeout terminates.
pub async fn attempt_limit(env: Env) {
    let holder = mutex(&env, t());
    let g = holder.acquire().await.unwrap();
    let err = mutex(&env, single_attempt()).acquire().await.unwrap_err();
    assert_attempt_limit(&err);
    let err = mutex(&env, zero_acquire_timeout())
        .acquire()
        .await
        .unwrap_err();
    assert_one_attempt(&err);
    g.release().await.unwrap();
}

/// MUTEX-27, WIRE-01: the TTL is the lock timeout.
pub async fn ttl_is_the_lock_timeout(env: Env) {
    let g = Mutex::with_options(env.backend(), "key2", no_refresh().build().unwrap())
        .unwrap()
        .acquire()
        .await
        .unwrap();
    let pttl = env.node().pttl("mutex:key2");
    assert!((400..=500).contains(&pttl), "PTTL {pttl}");
    g.release().await.unwrap();
}

/// MUTEX-29: keys are independent.
pub async fn keys_are_independent(env: Env) {
    let a = Mutex::with_options(env.backend(), "key1", t()).unwrap();
    let b = Mutex::with_options(env.backend(), "key2", t()).unwrap();
    let (ga, gb) = futures::join!(a.acquire(), b.acquire());
    let (ga, gb) = (ga.unwrap(), gb.unwrap());
    assert!(a.try_acquire().await.unwrap().is_none());
    ga.release().await.unwrap();
    gb.release().await.unwrap();
}

/// MUTEX-34, GAP-07: releasing a hold that is gone reports the loss and
/// leaves another holder alone.
pub async fn release_after_takeover(env: Env) {
    let g = mutex(&env, no_refresh().build().unwrap())
        .acquire()
        .await
        .unwrap();
    env.node().set(KEY, "other");
    assert_lost!(g.release().await.unwrap_err(), LostReason::Gone);
    assert_eq!(env.node().get(KEY).as_deref(), Some("other"));
}

/// Dropping a guard releases the lock in the background, promptly.
pub async fn drop_releases(env: Env) {
    let m = mutex(&env, t());
    let g = m.acquire().await.unwrap();
    drop(g);
    env.time
        .wait_until(
            "the dropped guard's release",
            Duration::from_secs(2),
            || env.node().get(KEY).is_none(),
        )
        .await;
}

/// The scoped form runs the work under the lock and releases after it.
pub async fn with_lock_runs_and_releases(env: Env) {
    let m = mutex(&env, t());
    let node = env.nodes[0].clone();
    let seen = observed_under_lock(
        &env.time,
        move || node.get(KEY),
        |work| m.with_lock(|| work),
    )
    .await;
    assert!(seen.is_some(), "the work ran while the key was held");
    assert_eq!(env.node().get(KEY), None);
}

/// The scoped form drops the work when the lock is lost mid-way.
pub async fn with_lock_stops_work_on_loss(env: Env) {
    let m = mutex(&env, t());
    let node = env.nodes[0].clone();
    // someone breaks the lock
    assert_work_dropped_on_loss(
        &env.time,
        move || node.del(KEY),
        |work| m.with_lock(|| work),
    )
    .await;
}

/// One instance with a fixed identifier never holds twice.
pub async fn fixed_identifier_holds_once(env: Env) {
    let m = mutex(&env, fixed_identifier("solo"));
    let g = m.acquire().await.unwrap();
    let err = m.try_acquire().await.unwrap_err();
    assert!(matches!(err, LockError::AlreadyHeld { .. }), "{err}");
    g.release().await.unwrap();
    let g = m.acquire().await.unwrap();
    g.release().await.unwrap();
}

/// One shared instance serialises tasks (each acquire has its own id).
pub async fn shared_instance_serialises_tasks(env: Env) {
    let m = mutex(&env, waiting(Duration::from_secs(10)));
    count_holders(&env.time, 8, 5, ms(1), 1, || m.acquire()).await;
}

/// WIRE-11, UTIL-03: scripts run by EVALSHA and fall back to EVAL.
pub async fn noscript_falls_back_to_eval(env: Env) {
    let m = mutex(&env, t());
    let g = m.acquire().await.unwrap();
    env.node().flush_scripts();
    g.release().await.unwrap(); // the release script is not cached any more
    assert_eq!(env.node().get(KEY), None);
}

/// A frozen node (SIGSTOP): acquire gives up within its bounds instead of
/// hanging, and a held lock whose refresh cannot be confirmed within the
/// lock timeout is reported lost.
pub async fn paused_node(env: Env) {
    let options = t_builder().command_timeout(ms(100)).build().unwrap();
    // counts every report, loss or not
    let lost = Arc::new(AtomicUsize::new(0));
    let count = lost.clone();
    let held_options = t_builder()
        .command_timeout(ms(100))
        .on_lock_lost(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let holder = mutex(&env, held_options);
    let g = holder.acquire().await.unwrap();

    let paused = Paused::new(env.node());
    let start = env.time.now();
    let err = Mutex::with_options(env.backend(), "other", options)
        .unwrap()
        .acquire()
        .await
        .unwrap_err();
    let took = env.time.since(start);
    // acquire timeout (150 ms) + one command timeout (100 ms), with margin
    assert!(took < Duration::from_secs(2), "acquire hung for {took:?}");
    assert!(err.is_timeout(), "{err}");
    let cause = std::error::Error::source(&err)
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        cause.contains("no reply within"),
        "the last attempt's error is the source: {cause:?}"
    );

    // The hold cannot be confirmed while the node is frozen.
    env.time
        .wait_until(
            "loss reported while the node was frozen",
            Duration::from_secs(3),
            || !g.is_acquired() && lost.load(Ordering::SeqCst) != 0,
        )
        .await;
    assert_lost!(g.lost().await, LostReason::Unconfirmed { .. });
    paused.resume();

    // After the thaw the lock is free again (expired or released).
    env.time
        .wait_until(
            "the lost hold to leave Redis",
            Duration::from_secs(3),
            || env.node().get(KEY).is_none(),
        )
        .await;
    assert!(g.release().await.unwrap_err().is_lost());
    assert_eq!(lost.load(Ordering::SeqCst), 1);
    let g = mutex(&env, t()).acquire().await.unwrap();
    g.release().await.unwrap();
}
