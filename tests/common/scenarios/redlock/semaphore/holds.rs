//! Holding and releasing on every node: arguments, two holders, a full
//! semaphore, a cancelled waiter, a takeover, and both kinds counting slots
//! in one ZSET.

use std::pin::pin;
use std::time::Duration;

use redsem_core::{LockKind, LockOptions, RedlockMultiSemaphore, RedlockSemaphore};

use super::{assert_everywhere, members_of, release_in_turn};
use crate::common::scenarios::redlock::{
    Backend, Kind, MULTI_3_1, MULTI_3_2, MULTI_3_3, SEM1, SEM2, SEM3, SEM_KEY as KEY,
};
use crate::common::scenarios::support::{
    assert_default_ttl, assert_message, assert_still_waiting, assert_timeout, no_refresh, rejected,
    takeover, waiting,
};
use crate::common::timing::{ms, t, OUTLIVE};
use crate::common::Env;

/// RLS-01, RLMS-01: limit 0, permits 0, permits above the limit, an empty
/// key and an empty node list are rejected, naming the argument.
pub async fn invalid_arguments(env: Env) {
    assert_eq!(
        rejected(RedlockSemaphore::new(env.backends(), "key", 0)),
        "limit"
    );
    assert_eq!(
        rejected(RedlockSemaphore::new(env.backends(), "", 1)),
        "key"
    );
    assert_eq!(
        rejected(RedlockSemaphore::<Backend>::new(Vec::new(), "key", 1)),
        "nodes"
    );
    assert_eq!(
        rejected(RedlockMultiSemaphore::new(env.backends(), "key", 3, 0)),
        "permits"
    );
    assert_eq!(
        rejected(RedlockMultiSemaphore::new(env.backends(), "key", 0, 1)),
        "limit"
    );
    assert_eq!(
        rejected(RedlockMultiSemaphore::new(env.backends(), "key", 2, 3)),
        "permits"
    );
    assert_eq!(
        rejected(RedlockMultiSemaphore::new(env.backends(), "", 3, 1)),
        "key"
    );
    assert_eq!(
        rejected(RedlockMultiSemaphore::<Backend>::new(
            Vec::new(),
            "key",
            3,
            1
        )),
        "nodes"
    );
    let s = RedlockSemaphore::new(env.backends(), "key", 2).unwrap();
    assert_eq!((s.limit(), s.nodes().len(), s.key()), (2, 3, KEY));
    let m = RedlockMultiSemaphore::new(env.backends(), "key", 3, 2).unwrap();
    assert_eq!((m.limit(), m.permits(), m.key()), (3, 2, KEY));
}

/// Two holders with default options: both on every node; releasing the
/// first leaves exactly the second; releasing that empties every node.
async fn two_holders(env: Env, a: Kind, b: Kind, kinds: (LockKind, LockKind)) {
    let g1 = a
        .lock(env.backends(), LockOptions::default())
        .acquire()
        .await
        .unwrap();
    let g2 = b
        .lock(env.backends(), LockOptions::default())
        .acquire()
        .await
        .unwrap();
    assert_eq!((g1.kind(), g2.kind()), kinds);
    assert!(g1.is_acquired() && g2.is_acquired());
    assert_everywhere(&env, members_of(&[(a, &g1), (b, &g2)]), "both holders");
    for node in &env.nodes {
        assert_default_ttl(node.pttl(KEY));
    }
    release_in_turn(&env, g1, b, g2).await;
}

/// RLS-02, RLS-16: limit 2, two holders.
pub async fn sem_acquire_release(env: Env) {
    two_holders(
        env,
        SEM2,
        SEM2,
        (LockKind::RedlockSemaphore, LockKind::RedlockSemaphore),
    )
    .await;
}

/// RLMS-02, RLMS-17: (3, 2) + (3, 1).
pub async fn multi_acquire_release(env: Env) {
    let kinds = (
        LockKind::RedlockMultiSemaphore,
        LockKind::RedlockMultiSemaphore,
    );
    two_holders(env, MULTI_3_2, MULTI_3_1, kinds).await;
}

/// A full semaphore times out with the waiter's kind in the message; the
/// holder is untouched.
async fn busy(env: Env, holder: Kind, waiter: Kind) {
    let g = holder.lock(env.backends(), t()).acquire().await.unwrap();
    let err = waiter
        .lock(env.backends(), t())
        .acquire()
        .await
        .unwrap_err();
    let want = format!("Acquire {} semaphore:key timeout", waiter.name());
    assert_timeout(&err, &want);
    assert_everywhere(&env, holder.members(g.identifier()), "only the holder");
    g.release().await.unwrap();
    assert_everywhere(&env, Vec::new(), "after release");
}

/// RLS-03: limit 1.
pub async fn sem_acquire_times_out_when_busy(env: Env) {
    busy(env, SEM1, SEM1).await;
}

/// RLMS-03: (3, 3) + (3, 1).
pub async fn multi_acquire_times_out_when_busy(env: Env) {
    busy(env, MULTI_3_3, MULTI_3_1).await;
}

/// Cancelling a waiting acquire leaves nothing on any node.
async fn cancel_waiting(env: Env, holder: Kind, waiter: Kind) {
    let g = holder.lock(env.backends(), t()).acquire().await.unwrap();
    let w = waiter.lock(env.backends(), waiting(Duration::from_secs(60)));
    let acquire = pin!(w.acquire());
    assert_still_waiting(&env.time, acquire, "the semaphore was full").await;
    g.release().await.unwrap();
    env.time.sleep(ms(100)).await;
    assert_everywhere(
        &env,
        Vec::new(),
        "the cancelled waiter must not take a slot",
    );
}

/// RLS-04.
pub async fn sem_dropping_a_waiting_acquire_cancels_it(env: Env) {
    cancel_waiting(env, SEM1, SEM1).await;
}

/// RLMS-04.
pub async fn multi_dropping_a_waiting_acquire_cancels_it(env: Env) {
    cancel_waiting(env, MULTI_3_3, MULTI_3_1).await;
}

/// RLS-08/09, RLMS-08/09: a hold made elsewhere is taken over and kept
/// alive on every node; release empties every node.
async fn external(env: Env, kind: Kind) {
    let ext = kind.lock(env.backends(), no_refresh().build().unwrap());
    let id = ext.acquire().await.unwrap().detach();
    let local = kind.lock(env.backends(), takeover(&id));
    let g = local.acquire().await.unwrap();
    assert_eq!(g.identifier(), id);
    env.time.sleep(OUTLIVE).await;
    assert_everywhere(&env, kind.members(&id), "one shared hold, kept alive");
    g.release().await.unwrap();
    assert_everywhere(&env, Vec::new(), "after release");
}

/// RLS-08/09: limit 3.
pub async fn sem_acquired_externally(env: Env) {
    external(env, SEM3).await;
}

/// RLMS-08/09: (3, 2).
pub async fn multi_acquired_externally(env: Env) {
    external(env, MULTI_3_2).await;
}

/// RLMS-14: multi and plain semaphores count slots in the same ZSET on every
/// node, and each reports its own kind.
pub async fn multi_shares_slots_with_semaphore(env: Env) {
    let m1 = MULTI_3_2.lock(env.backends(), t()).acquire().await.unwrap();
    let s1 = SEM3.lock(env.backends(), t()).acquire().await.unwrap();
    assert_everywhere(
        &env,
        members_of(&[(MULTI_3_2, &m1), (SEM3, &s1)]),
        "3 slots used",
    );
    let err = MULTI_3_2
        .lock(env.backends(), t())
        .acquire()
        .await
        .unwrap_err();
    assert_message(
        &err,
        "Acquire redlock-multi-semaphore semaphore:key timeout",
    );
    let err = SEM3.lock(env.backends(), t()).acquire().await.unwrap_err();
    assert_message(&err, "Acquire redlock-semaphore semaphore:key timeout");
    m1.release().await.unwrap();
    assert_everywhere(
        &env,
        vec![s1.identifier().to_owned()],
        "after releasing the multi",
    );
    s1.release().await.unwrap();
    assert_everywhere(&env, Vec::new(), "after release");
}
