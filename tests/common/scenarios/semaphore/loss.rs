//! Holds that vanish or are replaced behind the holder's back: the loss is
//! reported once, refresh re-creates nothing, release reports it too.

use redsem_core::{LockGuard, LostReason, Semaphore};

use super::{AnySem, KEY, PATIENCE};
use crate::common::scenarios::support::{
    assert_lost, assert_message, no_refresh, sorted, LossCount,
};
use crate::common::time::Time;
use crate::common::timing::ms;
use crate::common::Env;

/// Waits for `lost` to count the loss of `guard` (a `kind` hold), then
/// checks it: not acquired, `Gone`, `Lost <kind> for key semaphore:key`,
/// and still reported exactly once a while later.
pub(crate) async fn assert_lost_once(time: &Time, guard: &LockGuard, lost: &LossCount, kind: &str) {
    time.wait_until("the loss callback", PATIENCE, || lost.get() > 0)
        .await;
    assert!(!guard.is_acquired());
    let err = guard.lost().await;
    assert_lost!(err, LostReason::Gone);
    assert_message(&err, &format!("Lost {kind} for key semaphore:key"));
    time.sleep(ms(250)).await;
    assert_eq!(lost.get(), 1, "the loss is reported exactly once");
}

/// Acquires under a loss-counting callback, runs `tamper` with the
/// identifier, and checks the loss is reported exactly once with `Gone`,
/// and that release reports it too.
pub(crate) async fn lost_after<F>(env: &Env, limit: u32, permits: u32, tamper: F)
where
    F: FnOnce(&Env, &str),
{
    let lost = LossCount::default();
    let lock = AnySem::new(env, limit, permits, lost.t());
    let guard = lock.acquire().await.unwrap();
    tamper(env, guard.identifier());
    assert_lost_once(&env.time, &guard, &lost, lock.kind()).await;
    assert!(!guard.is_acquired());
    let err = guard.release().await.unwrap_err();
    assert!(err.is_lost(), "release reports the loss too: {err}");
}

/// Deletes the key and fills it with `members` scored at the server's now.
pub(crate) fn refill(env: &Env, members: &[&str]) {
    env.node().del(KEY);
    let now = env.node().now_ms();
    for m in members {
        env.node().zadd(KEY, now, m);
    }
}

/// SEM-10/11: the key is deleted and refilled by others: the loss is
/// reported once; the others' members are untouched.
pub async fn lost_when_refilled(env: Env) {
    lost_after(&env, 3, 0, |env, _| refill(env, &["aaa", "bbb", "ccc"])).await;
    assert_eq!(sorted(env.node().zrange(KEY)), ["aaa", "bbb", "ccc"]);
}

/// SEM-10 (simulated expiry): the key vanished; refresh does not re-create
/// it.
pub async fn lost_when_deleted(env: Env) {
    lost_after(&env, 3, 0, |env, _| env.node().del(KEY)).await;
    assert_eq!(env.node().pttl(KEY), -2);
}

/// SEM-23/24: a refresh that finds the hold gone changes no other member,
/// but still prunes expired ones.
pub async fn failed_refresh_still_prunes(env: Env) {
    lost_after(&env, 3, 0, |env, _| {
        env.node().del(KEY);
        let now = env.node().now_ms();
        env.node().zadd(KEY, now - 10_000, "old");
        env.node().zadd(KEY, now - 10, "fresh");
    })
    .await;
    let left = env.node().zrange_with_scores(KEY);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, "fresh");
}

/// SEM-27/28, GAP-07: releasing a hold that is gone reports the loss and
/// leaves the other members alone.
pub async fn release_after_loss(env: Env) {
    let g = Semaphore::with_options(env.backend(), "key", 3, no_refresh().build().unwrap())
        .unwrap()
        .acquire()
        .await
        .unwrap();
    refill(&env, &["other"]);
    assert_lost!(g.release().await.unwrap_err(), LostReason::Gone);
    assert_eq!(env.node().zrange(KEY), ["other"]);
}
