//! RedlockMutex behaviours (RLM-*) on 3 nodes, plus UTIL-01 and GAP-13.

use std::pin::pin;
use std::time::{Duration, Instant};

use redsem_core::{quorum, LockError, LockKind, LockOptions, LostReason, RedlockMutex};

use super::{gets, lost_when, Backend, Kind, Losses, MUTEX_KEY as KEY};
use crate::common::scenarios::support::{
    assert_attempt_limit, assert_busy_timeout, assert_default_ttl, assert_lost,
    assert_still_waiting, assert_timeout, assert_work_dropped_on_loss, count_holders,
    fixed_identifier, no_refresh, observed_under_lock, rejected, single_attempt, takeover, waiting,
};
use crate::common::timing::{ms, t, OUTLIVE};
use crate::common::Env;

fn mutex(env: &Env, options: LockOptions) -> RedlockMutex<Backend> {
    RedlockMutex::with_options(env.backends(), "key", options).unwrap()
}

fn all(id: &str) -> Vec<Option<String>> {
    vec![Some(id.to_owned()); 3]
}

const NONE: [Option<String>; 3] = [None, None, None];

/// UTIL-01, GAP-13: quorum is floor(n/2)+1; a single node is its own quorum.
pub async fn quorum_sizes(env: Env) {
    let q: Vec<usize> = (1..=9).map(quorum).collect();
    assert_eq!(q, [1, 2, 2, 3, 3, 4, 4, 5, 5]);

    let single = RedlockMutex::with_options(vec![env.nodes[0].backend()], "key", t()).unwrap();
    let g = single.acquire().await.unwrap();
    assert_eq!(
        gets(&env.nodes),
        [Some(g.identifier().to_owned()), None, None]
    );
    let other = RedlockMutex::with_options(vec![env.nodes[0].backend()], "key", t()).unwrap();
    assert!(other.try_acquire().await.unwrap().is_none());
    g.release().await.unwrap();
    assert_eq!(gets(&env.nodes), NONE);
}

/// RLM-01, GAP-13: an empty node list, an empty key and a lock timeout that
/// the clock-drift allowance would eat are rejected, naming the argument.
pub async fn invalid_arguments(env: Env) {
    assert_eq!(
        rejected(RedlockMutex::<Backend>::new(Vec::new(), "key")),
        "nodes"
    );
    assert_eq!(rejected(RedlockMutex::new(env.backends(), "")), "key");
    let options = LockOptions::builder()
        .lock_timeout(ms(2))
        .refresh_interval(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(
        rejected(RedlockMutex::with_options(env.backends(), "key", options)),
        "lock_timeout"
    );
    // defaults are fine
    let m = RedlockMutex::new(env.backends(), "key").unwrap();
    assert_eq!(m.nodes().len(), 3);
    assert_eq!(m.key(), KEY);
}

/// RLM-02, RLM-14, WIRE-12: the id is on every node with the lock timeout
/// as TTL; release clears every node.
pub async fn acquire_release(env: Env) {
    let m = RedlockMutex::new(env.backends(), "key").unwrap();
    let g = m.acquire().await.unwrap();
    assert!(g.is_acquired());
    assert_eq!(g.kind(), LockKind::RedlockMutex);
    assert_eq!(g.key(), KEY);
    assert_eq!(gets(&env.nodes), all(g.identifier()));
    for node in &env.nodes {
        assert_default_ttl(node.pttl(KEY));
    }
    g.release().await.unwrap();
    assert_eq!(gets(&env.nodes), NONE);
}

/// RLM-03: all nodes busy is a plain timeout (not a quorum error) naming
/// kind and key; the holder is untouched.
pub async fn acquire_times_out_when_busy(env: Env) {
    let g1 = mutex(&env, t()).acquire().await.unwrap();
    assert_busy_timeout(
        &env.time,
        mutex(&env, t()).acquire(),
        "Acquire redlock-mutex mutex:key timeout",
    )
    .await;
    assert_eq!(gets(&env.nodes), all(g1.identifier()));
    g1.release().await.unwrap();
    assert_eq!(gets(&env.nodes), NONE);
}

/// RLM-15/16: try_acquire makes one attempt; busy is `None`.
pub async fn try_acquire(env: Env) {
    let g1 = mutex(&env, t())
        .try_acquire()
        .await
        .unwrap()
        .expect("free mutex");
    let start = env.time.now();
    assert!(mutex(&env, t()).try_acquire().await.unwrap().is_none());
    assert!(
        env.time.since(start) < ms(140),
        "try_acquire waited {:?}",
        env.time.since(start)
    );
    assert_eq!(gets(&env.nodes), all(g1.identifier()));
    g1.release().await.unwrap();
    assert_eq!(gets(&env.nodes), NONE);
}

/// RLM-04: cancelling (dropping) a waiting acquire leaves nothing behind on
/// any node, and the waiter never takes the lock later.
pub async fn dropping_a_waiting_acquire_cancels_it(env: Env) {
    let g1 = mutex(&env, t()).acquire().await.unwrap();
    let waiter = mutex(&env, waiting(Duration::from_secs(60)));
    let acquire = pin!(waiter.acquire());
    assert_still_waiting(&env.time, acquire, "the mutex was held").await;
    assert_eq!(gets(&env.nodes), all(g1.identifier()));
    g1.release().await.unwrap();
    env.time.sleep(ms(100)).await;
    assert_eq!(
        gets(&env.nodes),
        NONE,
        "the cancelled waiter must not take the lock"
    );
}

/// RLM-05: refresh keeps the id on every node past the lock timeout.
pub async fn refresh_keeps_the_lock(env: Env) {
    let losses = Losses::default();
    let g = mutex(&env, losses.t()).acquire().await.unwrap();
    env.time.sleep(OUTLIVE).await;
    assert!(g.is_acquired());
    assert_eq!(gets(&env.nodes), all(g.identifier()));
    losses.assert_none();
    g.release().await.unwrap();
    assert_eq!(gets(&env.nodes), NONE);
}

/// RLM-06: after stop_refresh every node lets the key expire; the guard
/// reports the expiry.
pub async fn stop_refresh_lets_it_expire(env: Env) {
    let g = mutex(&env, t()).acquire().await.unwrap();
    g.stop_refresh();
    env.time.sleep(OUTLIVE).await;
    assert_eq!(gets(&env.nodes), NONE);
    assert!(!g.is_acquired());
    assert_lost!(g.lost().await, LostReason::Expired);
}

/// RLM-07/08: a hold made elsewhere is taken over (one refresh on every
/// node) and kept alive; the next acquire is a normal one.
pub async fn acquired_externally(env: Env) {
    let ext = mutex(&env, no_refresh().build().unwrap());
    let id = ext.acquire().await.unwrap().detach();
    let local = mutex(&env, takeover(&id));
    let g = local.acquire().await.unwrap();
    assert_eq!(g.identifier(), id);
    env.time.sleep(OUTLIVE).await;
    assert_eq!(gets(&env.nodes), all(&id), "kept alive by local's refresh");
    g.release().await.unwrap();
    assert_eq!(gets(&env.nodes), NONE);

    let g = local.acquire().await.unwrap();
    assert_eq!(gets(&env.nodes), all(&id));
    g.release().await.unwrap();
    assert_eq!(gets(&env.nodes), NONE);
}

/// RLM-22, RLM-24: a takeover whose refresh misses quorum fails and removes
/// the minority hold; other holders are untouched.
pub async fn takeover_without_quorum_fails(env: Env) {
    // RLM-22: n1 '111', n2/n3 '222'
    env.nodes[0].set(KEY, "111");
    env.nodes[1].set(KEY, "222");
    env.nodes[2].set(KEY, "222");
    let local = mutex(&env, takeover("111"));
    assert!(local.try_acquire().await.unwrap().is_none());
    assert_eq!(
        gets(&env.nodes),
        [None, Some("222".into()), Some("222".into())]
    );
    let err = local.acquire().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");

    // RLM-24: only n1
    for node in &env.nodes {
        node.del(KEY);
    }
    env.nodes[0].set(KEY, "111");
    let local = mutex(&env, takeover("111"));
    assert!(local.try_acquire().await.unwrap().is_none());
    assert_eq!(gets(&env.nodes), NONE, "the minority hold is released");
}

/// RLM-23: a takeover with quorum extends the TTL and gives the hold to the
/// node that lacked it.
pub async fn takeover_with_quorum_fills_the_rest(env: Env) {
    env.nodes[0].set(KEY, "111");
    env.nodes[1].set(KEY, "111");
    let g = mutex(&env, takeover("111")).acquire().await.unwrap();
    assert_eq!(g.identifier(), "111");
    assert_eq!(gets(&env.nodes), all("111"), "node 3 gets the hold too");
    for node in &env.nodes {
        let pttl = node.pttl(KEY);
        assert!(
            (200..=500).contains(&pttl),
            "PTTL {pttl}, want the 500ms lock timeout"
        );
    }
    g.release().await.unwrap();
    assert_eq!(gets(&env.nodes), NONE);
}

/// RLM-09/10: another id took the key on every node: the loss is reported
/// once, and the other holder's value is left alone.
pub async fn lost_when_taken(env: Env) {
    let taken = |env: &Env| env.nodes.iter().for_each(|n| n.set(KEY, "222"));
    lost_when(&env, Kind::Mutex, taken, |_| {}).await;
    assert_eq!(gets(&env.nodes), all("222"));
}

/// RLM-09/10 with the key deleted on every node.
pub async fn lost_when_deleted(env: Env) {
    let deleted = |env: &Env| env.nodes.iter().for_each(|n| n.del(KEY));
    lost_when(&env, Kind::Mutex, deleted, |_| {}).await;
    assert_eq!(gets(&env.nodes), NONE);
}

/// A hold taken over on one node only is not a loss: quorum still holds,
/// and the other holder's value is not overwritten.
pub async fn minority_tamper_is_tolerated(env: Env) {
    let losses = Losses::default();
    let g = mutex(&env, losses.t()).acquire().await.unwrap();
    let id = g.identifier().to_owned();
    env.nodes[0].set(KEY, "222");
    env.time.sleep(OUTLIVE).await;
    assert!(g.is_acquired());
    losses.assert_none();
    assert_eq!(
        gets(&env.nodes),
        [Some("222".into()), Some(id.clone()), Some(id)]
    );
    g.release().await.unwrap();
    assert_eq!(gets(&env.nodes), [Some("222".into()), None, None]);
}

/// GAP-12 / issue: a refresh with quorum gives the hold back to a node that
/// lost it.
pub async fn refresh_restores_a_missing_node(env: Env) {
    let losses = Losses::default();
    let g = mutex(&env, losses.t()).acquire().await.unwrap();
    let id = g.identifier().to_owned();
    env.nodes[1].del(KEY);
    env.time
        .wait_until("node 2 has the hold again", Duration::from_secs(2), || {
            env.nodes[1].get(KEY).as_deref() == Some(id.as_str())
        })
        .await;
    let pttl = env.nodes[1].pttl(KEY);
    assert!(
        (1..=500).contains(&pttl),
        "restored with the lock timeout, PTTL {pttl}"
    );
    assert!(g.is_acquired());
    losses.assert_none();
    g.release().await.unwrap();
    assert_eq!(gets(&env.nodes), NONE);
}

/// RLM-11: three lifecycles; a released lock never comes back.
pub async fn reuse(env: Env) {
    let m = mutex(&env, t());
    for _ in 0..3 {
        let g = m.acquire().await.unwrap();
        env.time.sleep(ms(200)).await;
        assert_eq!(gets(&env.nodes), all(g.identifier()));
        g.release().await.unwrap();
        assert_eq!(gets(&env.nodes), NONE);
        env.time.sleep(ms(200)).await;
        assert_eq!(gets(&env.nodes), NONE, "no resurrection after release");
    }
}

/// RLM-17: one attempt with an unlimited acquire timeout terminates.
pub async fn attempt_limit(env: Env) {
    let g = mutex(&env, t()).acquire().await.unwrap();
    let err = mutex(&env, single_attempt()).acquire().await.unwrap_err();
    assert_timeout(&err, "Acquire redlock-mutex mutex:key timeout");
    assert_attempt_limit(&err);
    g.release().await.unwrap();
}

/// RLM-18/19: every node holds the id with the lock timeout as TTL.
pub async fn ttl_is_the_lock_timeout(env: Env) {
    let options = no_refresh().identifier("111").build().unwrap();
    let g = RedlockMutex::with_options(env.backends(), "key2", options)
        .unwrap()
        .acquire()
        .await
        .unwrap();
    for node in &env.nodes {
        assert_eq!(node.get("mutex:key2").as_deref(), Some("111"));
        let pttl = node.pttl("mutex:key2");
        assert!((300..=500).contains(&pttl), "PTTL {pttl}");
    }
    g.release().await.unwrap();
}

/// RLM-21: keys are independent.
pub async fn keys_are_independent(env: Env) {
    let a = RedlockMutex::with_options(env.backends(), "key1", t()).unwrap();
    let b = RedlockMutex::with_options(env.backends(), "key2", t()).unwrap();
    let (ga, gb) = futures::join!(a.acquire(), b.acquire());
    let (ga, gb) = (ga.unwrap(), gb.unwrap());
    assert!(a.try_acquire().await.unwrap().is_none());
    assert!(b.try_acquire().await.unwrap().is_none());
    for node in &env.nodes {
        assert_eq!(node.get("mutex:key1").as_deref(), Some(ga.identifier()));
        assert_eq!(node.get("mutex:key2").as_deref(), Some(gb.identifier()));
    }
    ga.release().await.unwrap();
    gb.release().await.unwrap();
}

/// RLM-25/26, GAP-07: releasing a hold that is gone everywhere reports the
/// loss without an error from any node, and leaves other values alone.
pub async fn release_when_gone(env: Env) {
    let options = no_refresh().build().unwrap();
    let g = mutex(&env, options.clone()).acquire().await.unwrap();
    env.nodes.iter().for_each(|n| n.del(KEY));
    assert_lost!(g.release().await.unwrap_err(), LostReason::Gone);

    let g = mutex(&env, options).acquire().await.unwrap();
    env.nodes[0].set(KEY, "other");
    env.nodes[1].set(KEY, "other");
    let err = g.release().await.unwrap_err();
    assert!(err.is_lost(), "{err:?}");
    assert_eq!(
        gets(&env.nodes),
        [Some("other".into()), Some("other".into()), None]
    );
}

/// Dropping a guard releases on every node in the background, promptly.
pub async fn drop_releases(env: Env) {
    let g = mutex(&env, t()).acquire().await.unwrap();
    assert_eq!(gets(&env.nodes), all(g.identifier()));
    drop(g);
    env.time
        .wait_until(
            "the dropped guard is released everywhere",
            Duration::from_secs(2),
            || gets(&env.nodes) == NONE,
        )
        .await;
}

/// The scoped form runs the work under the lock and releases after it.
pub async fn with_lock_runs_and_releases(env: Env) {
    let nodes = env.nodes.clone();
    let m = mutex(&env, t());
    let seen =
        observed_under_lock(&env.time, move || gets(&nodes), |work| m.with_lock(|| work)).await;
    assert!(
        seen.iter().all(|v| v.is_some() && *v == seen[0]),
        "held on every node: {seen:?}"
    );
    assert_eq!(gets(&env.nodes), NONE);
}

/// The scoped form drops the work when quorum is lost mid-way.
pub async fn with_lock_stops_work_on_loss(env: Env) {
    let nodes = env.nodes.clone();
    let m = mutex(&env, t());
    let break_quorum = move || {
        nodes[0].del(KEY);
        nodes[1].set(KEY, "222");
    };
    assert_work_dropped_on_loss(&env.time, break_quorum, |work| m.with_lock(|| work)).await;
    assert_eq!(
        gets(&env.nodes),
        [None, Some("222".into()), None],
        "released on the remaining node"
    );
}

/// One instance with a fixed identifier never holds twice.
pub async fn fixed_identifier_holds_once(env: Env) {
    let m = mutex(&env, fixed_identifier("solo"));
    let g = m.acquire().await.unwrap();
    let err = m.try_acquire().await.unwrap_err();
    assert!(matches!(err, LockError::AlreadyHeld { .. }), "{err}");
    g.release().await.unwrap();
    let g = m.acquire().await.unwrap();
    assert_eq!(gets(&env.nodes), all("solo"));
    g.release().await.unwrap();
}

/// One shared instance serialises tasks.
pub async fn shared_instance_serialises_tasks(env: Env) {
    let m = mutex(&env, waiting(Duration::from_secs(20)));
    count_holders(&env.time, 4, 3, ms(2), 1, || m.acquire()).await;
    assert_eq!(gets(&env.nodes), NONE);
}
