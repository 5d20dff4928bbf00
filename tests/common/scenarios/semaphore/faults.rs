//! Node faults: a restart that loses every hold, and a pause shorter than
//! the lock timeout that loses none. (The cluster runners skip these; see
//! `NODE_FAULT_SCENARIOS` in `tests/common/cluster_node.rs`.)

use std::time::Duration;

use super::{score_of, AnySem, KEY, PATIENCE};
use crate::common::scenarios::support::{sorted, LossCount, Paused};
use crate::common::timing::{ms, t, t_builder};
use crate::common::Env;

/// SEM-14, MSEM-15: the node crashes and comes back empty. Each holder
/// reports its loss once, refresh does not re-create anything, a new holder
/// works.
pub(crate) async fn node_restart_with(env: Env, limit: u32, permits: u32, holders: usize) {
    let node = env.node();
    let lost: Vec<LossCount> = (0..holders).map(|_| LossCount::default()).collect();
    let locks: Vec<AnySem> = lost
        .iter()
        .map(|l| AnySem::new(&env, limit, permits, l.t()))
        .collect();
    let mut guards = Vec::new();
    for l in &locks {
        guards.push(l.acquire().await.unwrap());
    }
    assert_eq!(node.zrange(KEY).len(), holders * permits.max(1) as usize);
    node.stop();
    env.time.sleep(Duration::from_secs(1)).await;
    node.start();
    env.time.sleep(Duration::from_secs(1)).await;
    assert_eq!(
        node.zrange_with_scores(KEY),
        [],
        "refresh must not re-create members"
    );
    for (i, (l, g)) in lost.iter().zip(&guards).enumerate() {
        assert_eq!(l.get(), 1, "holder {i} reports its loss once");
        assert!(!g.is_acquired());
    }
    let other = AnySem::new(&env, limit, permits, t());
    let g = other.acquire().await.unwrap();
    assert_eq!(node.zrange(KEY), other.members(g.identifier()));
    for old in guards {
        assert!(old.release().await.unwrap_err().is_lost());
    }
    g.release().await.unwrap();
    assert_eq!(node.pttl(KEY), -2);
}

/// SEM-14.
pub async fn node_restart(env: Env) {
    node_restart_with(env, 3, 0, 3).await;
}

/// GAP-09/19: a node that stops answering for less than the lock timeout
/// is not a loss: failed or timed-out refreshes are retried and the hold
/// stays.
pub(crate) async fn survives_a_short_pause_with(env: Env, limit: u32, permits: u32) {
    let node = env.node();
    let lost = LossCount::default();
    let lock = AnySem::new(
        &env,
        limit,
        permits,
        lost.options(t_builder().lock_timeout(ms(1_000))),
    );
    let g = lock.acquire().await.unwrap();
    let paused = Paused::new(node);
    env.time.sleep(ms(300)).await;
    paused.resume();
    let first = &lock.members(g.identifier())[0];
    let before = score_of(node, first).expect("the hold is there");
    env.time
        .wait_until("a refresh after the pause", PATIENCE, || {
            score_of(node, first).is_some_and(|s| s > before)
        })
        .await;
    assert_eq!(lost.get(), 0, "a short outage is not a loss");
    assert!(g.is_acquired());
    assert_eq!(
        sorted(node.zrange(KEY)),
        sorted(lock.members(g.identifier()))
    );
    g.release().await.unwrap();
    assert_eq!(node.pttl(KEY), -2);
}

/// GAP-09/19.
pub async fn survives_a_short_pause(env: Env) {
    survives_a_short_pause_with(env, 2, 0).await;
}
