//! Nodes that stop: a node down from the start, each node stopped and
//! restarted in turn, two of three down, and 5 nodes with two, then three,
//! down.

use std::time::Duration;

use redsem_core::{LockError, LostReason};

use super::{acquire_all, assert_clean, clean, works_again};
use crate::common::scenarios::redlock::{
    gets, quorum_failure, Kind, Losses, MULTI_3_1, MULTI_3_2, SEM3,
};
use crate::common::scenarios::support::assert_lost;
use crate::common::timing::{ms, t, OUTLIVE};
use crate::common::Env;

/// Issue: node 3 down before the acquire: acquire, refresh and release all
/// succeed on the other two; the node's errors never escape.
pub async fn mutex_node_down_from_the_start(env: Env) {
    env.nodes[2].stop();
    let losses = Losses::default();
    let g = Kind::Mutex
        .lock(env.backends(), losses.t())
        .acquire()
        .await
        .unwrap();
    let id = Some(g.identifier().to_owned());
    assert_eq!(gets(&env.nodes[..2]), [id.clone(), id]);
    env.time.sleep(OUTLIVE).await;
    assert!(g.is_acquired());
    losses.assert_none();
    g.release().await.unwrap();
    assert_eq!(gets(&env.nodes[..2]), [None, None]);
    env.nodes[2].start();
    works_again(&env, Kind::Mutex).await;
}

/// RLM-12, RLS-14, RLMS-15: each node in turn is stopped while the locks
/// are held. The others keep the holds (no loss), a contender finds the
/// lock busy (two "held" answers make a quorum impossible, whatever the
/// stopped node would say), and once the node is back the next refresh
/// gives it every hold again.
async fn each_node_outage(env: Env, holders: &[Kind], probe: Kind) {
    let losses = Losses::default();
    let guards = acquire_all(&env, holders, &losses).await;
    for down in 0..3 {
        env.nodes[down].stop();
        env.time.sleep(OUTLIVE).await;
        assert_eq!(
            losses.count(),
            0,
            "node {} down: {:?}",
            down + 1,
            losses.messages()
        );
        for (kind, g) in &guards {
            assert!(g.is_acquired(), "node {} down", down + 1);
            for (i, node) in env.nodes.iter().enumerate().filter(|(i, _)| *i != down) {
                assert!(
                    kind.holds(&**node, g.identifier()),
                    "node {} lost a hold while node {} was down",
                    i + 1,
                    down + 1
                );
            }
        }
        let err = probe.lock(env.backends(), t()).acquire().await.unwrap_err();
        assert!(
            matches!(
                err,
                LockError::Timeout {
                    failed_attempts: 0,
                    ..
                }
            ),
            "node {} down, the others busy: {err:?}",
            down + 1
        );
        assert!(!err.is_unreachable(), "{err}");

        env.nodes[down].start();
        env.time
            .wait_until(
                &format!("restarted node {} has every hold again", down + 1),
                Duration::from_secs(3),
                || {
                    guards
                        .iter()
                        .all(|(kind, g)| kind.holds(&*env.nodes[down], g.identifier()))
                },
            )
            .await;
        // every node answers and is busy: a plain timeout
        let err = probe.lock(env.backends(), t()).acquire().await.unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
    }
    losses.assert_none();
    for (_, g) in guards {
        g.release().await.unwrap();
    }
    assert_clean(probe, &env, "after release");
}

/// RLM-12.
pub async fn mutex_each_node_outage_keeps_quorum(env: Env) {
    each_node_outage(env, &[Kind::Mutex], Kind::Mutex).await;
}

/// RLS-14: 3 holders, limit 3.
pub async fn sem_each_node_outage_keeps_quorum(env: Env) {
    each_node_outage(env, &[SEM3, SEM3, SEM3], SEM3).await;
}

/// RLMS-15: (3, 2) + (3, 1), probed by a semaphore of limit 3.
pub async fn multi_each_node_outage_keeps_quorum(env: Env) {
    each_node_outage(env, &[MULTI_3_2, MULTI_3_1], SEM3).await;
}

/// RLM-13, RLS-15, RLMS-16: two of three nodes stop. Every holder reports
/// the loss once, the survivor is cleaned, a contender fails with a quorum
/// error naming both stopped nodes and leaves nothing on the survivor.
async fn two_down(env: Env, holders: &[Kind], contender: Kind, pairs: &[(usize, usize)]) {
    for &(a, b) in pairs {
        let survivor = 3 - a - b;
        let losses = Losses::default();
        let guards = acquire_all(&env, holders, &losses).await;
        env.nodes[a].stop();
        env.nodes[b].stop();
        env.time
            .wait_until(
                "every holder reports the loss",
                Duration::from_secs(3),
                || losses.count() >= guards.len(),
            )
            .await;
        env.time
            .wait_until(
                "every hold is released on the survivor",
                Duration::from_secs(3),
                || {
                    guards
                        .iter()
                        .all(|(kind, g)| kind.lacks(&*env.nodes[survivor], g.identifier()))
                },
            )
            .await;
        for (_, g) in &guards {
            assert!(!g.is_acquired());
            // Errors are "unknown", never "no": the loss comes when the
            // validity runs out without a confirmed quorum.
            assert_lost!(
                g.lost().await,
                LostReason::Unconfirmed {
                    last_error: Some(_)
                }
            );
        }
        assert!(
            clean(contender, &*env.nodes[survivor]),
            "survivor not clean"
        );
        env.time.sleep(ms(300)).await;
        assert_eq!(
            losses.count(),
            guards.len(),
            "one report per holder: {:?}",
            losses.messages()
        );
        losses.assert_all_lost(holders[0]);

        let q = quorum_failure(
            contender
                .lock(env.backends(), t())
                .acquire()
                .await
                .unwrap_err(),
        );
        q.assert_counts("acquired", 1, 3, 2);
        assert_eq!(q.nodes(), [a + 1, b + 1], "{}", q.message);
        let head = format!(
            "{} {}: acquired 1 of 3, needed 2: node {} ",
            contender.name(),
            contender.key(),
            a + 1
        );
        assert!(q.message.starts_with(&head), "{}", q.message);
        assert!(
            q.message.contains(&format!(", node {} ", b + 1)),
            "{}",
            q.message
        );
        env.time
            .wait_until(
                "the contender's partial hold is undone on the survivor",
                Duration::from_secs(3),
                || clean(contender, &*env.nodes[survivor]),
            )
            .await;

        for (_, g) in guards {
            assert!(g.release().await.unwrap_err().is_lost());
        }
        env.nodes[a].start();
        env.nodes[b].start();
        works_again(&env, contender).await;
    }
}

/// RLM-13, for every pair of stopped nodes.
pub async fn mutex_two_nodes_down_lose_the_lock(env: Env) {
    two_down(env, &[Kind::Mutex], Kind::Mutex, &[(0, 1), (0, 2), (1, 2)]).await;
}

/// RLS-15: 3 holders, limit 3; nodes 1 and 2 stop.
pub async fn sem_two_nodes_down_lose_the_lock(env: Env) {
    two_down(env, &[SEM3, SEM3, SEM3], SEM3, &[(0, 1)]).await;
}

/// RLMS-16: (3, 2) + (3, 1); nodes 2 and 3 stop; the probe is (3, 1).
pub async fn multi_two_nodes_down_lose_the_lock(env: Env) {
    two_down(env, &[MULTI_3_2, MULTI_3_1], MULTI_3_1, &[(1, 2)]).await;
}

/// Issue: 5 nodes (quorum 3) with two down still lock (3 of 5); a third
/// failure loses the lock, cleans the remaining nodes, and a contender's
/// quorum error names the three.
async fn five_nodes(env: Env, kind: Kind) {
    assert_eq!(env.nodes.len(), 5);
    let losses = Losses::default();
    env.nodes[0].stop();
    env.nodes[2].stop();
    let g = kind
        .lock(env.backends(), losses.t())
        .acquire()
        .await
        .unwrap();
    for i in [1, 3, 4] {
        assert!(kind.holds(&*env.nodes[i], g.identifier()), "node {}", i + 1);
    }
    env.time.sleep(OUTLIVE).await;
    assert!(g.is_acquired());
    losses.assert_none();

    env.nodes[3].stop();
    env.time
        .wait_until("the loss is reported", Duration::from_secs(3), || {
            losses.count() > 0
        })
        .await;
    assert!(!g.is_acquired());
    assert_lost!(
        g.lost().await,
        LostReason::Unconfirmed {
            last_error: Some(_)
        }
    );
    // the loss is reported at once; the clean-up of the survivors follows
    env.time
        .wait_until("the survivors are released", Duration::from_secs(3), || {
            [1, 4].iter().all(|&i| clean(kind, &*env.nodes[i]))
        })
        .await;
    let q = quorum_failure(kind.lock(env.backends(), t()).acquire().await.unwrap_err());
    q.assert_counts("acquired", 2, 5, 3);
    assert_eq!(q.nodes(), [1, 3, 4], "{}", q.message);
    env.time
        .wait_until(
            "the contender's partial holds are undone",
            Duration::from_secs(3),
            || [1, 4].iter().all(|&i| clean(kind, &*env.nodes[i])),
        )
        .await;
    env.time.sleep(ms(200)).await;
    assert_eq!(losses.count(), 1, "{:?}", losses.messages());
    assert!(g.release().await.unwrap_err().is_lost());

    for i in [0, 2, 3] {
        env.nodes[i].start();
    }
    works_again(&env, kind).await;
}

/// 5 nodes, mutex.
pub async fn mutex_five_nodes_two_down(env: Env) {
    five_nodes(env, Kind::Mutex).await;
}

/// 5 nodes, semaphore (limit 3).
pub async fn sem_five_nodes_two_down(env: Env) {
    five_nodes(env, SEM3).await;
}
