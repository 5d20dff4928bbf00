//! Refresh on every node: holders kept alive or pruned, loss when the ZSET
//! is replaced, reuse with and without refresh, and the refresh fill that
//! respects a node's limit.

use std::time::Duration;

use redsem_core::LostReason;

use super::{assert_everywhere, members_of, release_in_turn};
use crate::common::scenarios::redlock::{
    lost_when, zranges, Kind, Losses, MULTI_3_1, MULTI_3_2, MULTI_4_2, SEM1, SEM2, SEM3,
    SEM_KEY as KEY,
};
use crate::common::scenarios::support::{assert_lost, assert_timeout, no_refresh};
use crate::common::timing::{ms, t, OUTLIVE};
use crate::common::Env;

/// Refresh keeps both holders on every node past the lock timeout.
async fn refresh_keeps(env: Env, a: Kind, b: Kind) {
    let losses = Losses::default();
    let g1 = a.lock(env.backends(), losses.t()).acquire().await.unwrap();
    let g2 = b.lock(env.backends(), losses.t()).acquire().await.unwrap();
    env.time.sleep(OUTLIVE).await;
    assert!(g1.is_acquired() && g2.is_acquired());
    losses.assert_none();
    assert_everywhere(&env, members_of(&[(a, &g1), (b, &g2)]), "refreshed holders");
    release_in_turn(&env, g1, b, g2).await;
}

/// RLS-05: limit 2.
pub async fn sem_refresh_keeps_holds(env: Env) {
    refresh_keeps(env, SEM2, SEM2).await;
}

/// RLMS-05: (3, 2) + (3, 1).
pub async fn multi_refresh_keeps_holds(env: Env) {
    refresh_keeps(env, MULTI_3_2, MULTI_3_1).await;
}

/// A holder that stops refreshing is pruned by the other's refresh on
/// every node; once the other stops too, every node is empty.
async fn stop_refresh(env: Env, a: Kind, b: Kind) {
    let g1 = a.lock(env.backends(), t()).acquire().await.unwrap();
    let g2 = b.lock(env.backends(), t()).acquire().await.unwrap();
    g1.stop_refresh();
    env.time.sleep(OUTLIVE).await;
    assert_everywhere(
        &env,
        b.members(g2.identifier()),
        "the stopped holder was pruned",
    );
    assert!(!g1.is_acquired() && g2.is_acquired());
    g2.stop_refresh();
    env.time.sleep(OUTLIVE).await;
    assert_everywhere(&env, Vec::new(), "both expired");
    for g in [g1, g2] {
        assert_lost!(g.lost().await, LostReason::Expired);
    }
}

/// RLS-06: limit 2.
pub async fn sem_stop_refresh_lets_it_expire(env: Env) {
    stop_refresh(env, SEM2, SEM2).await;
}

/// RLMS-06: (3, 2) + (3, 1).
pub async fn multi_stop_refresh_lets_it_expire(env: Env) {
    stop_refresh(env, MULTI_3_2, MULTI_3_1).await;
}

/// RLS-10/11, RLMS-10/11: the ZSET is replaced by aaa, bbb, ccc on every
/// node: the loss is reported once, and the others' members stay.
async fn lost_when_replaced(env: Env, kind: Kind) {
    let replace = |env: &Env| {
        for node in &env.nodes {
            node.del(KEY);
            let now = node.now_ms();
            for m in ["aaa", "bbb", "ccc"] {
                node.zadd(KEY, now, m);
            }
        }
    };
    let others_stay = |env: &Env| {
        let others: Vec<String> = ["aaa", "bbb", "ccc"].map(String::from).to_vec();
        assert_everywhere(env, others, "the other members are untouched");
    };
    lost_when(&env, kind, replace, others_stay).await;
}

/// RLS-10/11: limit 3.
pub async fn sem_lost_when_replaced(env: Env) {
    lost_when_replaced(env, SEM3).await;
}

/// RLMS-10/11: (3, 2).
pub async fn multi_lost_when_replaced(env: Env) {
    lost_when_replaced(env, MULTI_3_2).await;
}

/// RLS-12, RLMS-12: the same two instances over 3 lifecycles, refresh on.
async fn reuse_with_refresh(env: Env, kind: Kind) {
    let s1 = kind.lock(env.backends(), t());
    let s2 = kind.lock(env.backends(), t());
    for _ in 0..3 {
        let g1 = s1.acquire().await.unwrap();
        let g2 = s2.acquire().await.unwrap();
        env.time.sleep(ms(200)).await;
        assert_everywhere(
            &env,
            members_of(&[(kind, &g1), (kind, &g2)]),
            "both holders",
        );
        g1.release().await.unwrap();
        g2.release().await.unwrap();
        assert_everywhere(&env, Vec::new(), "after release");
        env.time.sleep(ms(200)).await;
        assert_everywhere(&env, Vec::new(), "no resurrection after release");
    }
}

/// RLS-12: limit 2.
pub async fn sem_reuse_with_refresh(env: Env) {
    reuse_with_refresh(env, SEM2).await;
}

/// RLMS-12: (4, 2).
pub async fn multi_reuse_with_refresh(env: Env) {
    reuse_with_refresh(env, MULTI_4_2).await;
}

/// RLS-13, RLMS-13: refresh off; an expired member is pruned lazily by the
/// next acquire on every node.
async fn reuse_without_refresh(env: Env, kind: Kind) {
    let options = || {
        no_refresh()
            .lock_timeout(ms(400))
            .acquire_timeout(ms(50))
            .build()
            .unwrap()
    };
    let (s1, s2, s3) = (
        kind.lock(env.backends(), options()),
        kind.lock(env.backends(), options()),
        kind.lock(env.backends(), options()),
    );
    s1.acquire().await.unwrap().release().await.unwrap();
    assert_everywhere(&env, Vec::new(), "after one cycle");

    let g1 = s1.acquire().await.unwrap();
    env.time.sleep(ms(150)).await;
    let g2 = s2.acquire().await.unwrap();
    let err = s3.acquire().await.unwrap_err();
    assert_timeout(
        &err,
        &format!("Acquire {} semaphore:key timeout", kind.name()),
    );
    env.time.sleep(ms(300)).await; // g1 is older than the lock timeout now
    let g3 = s3.acquire().await.unwrap();
    for (i, node) in env.nodes.iter().enumerate() {
        assert!(
            kind.holds(&**node, g3.identifier()),
            "node {}: {:?}",
            i + 1,
            node.zrange(KEY)
        );
        assert!(
            kind.lacks(&**node, g1.identifier()),
            "node {}: g1 not pruned: {:?}",
            i + 1,
            node.zrange(KEY)
        );
    }
    drop((g1, g2));
    g3.release().await.unwrap();
}

/// RLS-13: limit 2.
pub async fn sem_reuse_without_refresh(env: Env) {
    reuse_without_refresh(env, SEM2).await;
}

/// RLMS-13: (4, 2).
pub async fn multi_reuse_without_refresh(env: Env) {
    reuse_without_refresh(env, MULTI_4_2).await;
}

/// GAP-12: the refresh fill respects the node's limit: while another member
/// fills node 3, the fill fails there silently and the hold stays acquired;
/// once that member expires by score, the fill succeeds.
pub async fn sem_fill_respects_the_limit(env: Env) {
    let losses = Losses::default();
    let g = SEM1
        .lock(env.backends(), losses.t())
        .acquire()
        .await
        .unwrap();
    let id = g.identifier().to_owned();
    let node3 = &env.nodes[2];
    node3.del(KEY);
    node3.zadd(KEY, node3.now_ms(), "intruder");
    env.time.sleep(ms(300)).await; // a few refresh ticks, before "intruder" expires by score
    assert_eq!(
        zranges(&env.nodes),
        [
            vec![id.clone()],
            vec![id.clone()],
            vec!["intruder".to_owned()]
        ]
    );
    assert!(g.is_acquired());
    losses.assert_none();
    env.time
        .wait_until(
            "node 3 gets the hold once the intruder expired",
            Duration::from_secs(3),
            || node3.zrange(KEY) == [id.clone()],
        )
        .await;
    assert!(g.is_acquired());
    g.release().await.unwrap();
    assert_everywhere(&env, Vec::new(), "after release");
}
