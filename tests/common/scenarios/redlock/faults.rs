//! Node faults for every Redlock kind (RLM-12/13, RLS-14/15, RLMS-15/16,
//! GAP-12, GAP-19 and the Redlock issue's fault list): a node down from the
//! start, each node stopped and restarted in turn, two of three down, a
//! paused (SIGSTOP) node, cancel with a hung node, 5 nodes with two down,
//! and the validity rule.

use std::time::{Duration, Instant};

use futures::future::{select, Either};
use redsem_core::{LockError, LockGuard, LockOptions, LostReason, RedlockMutex};
use redsem_mock::MockBackend;

use super::{gets, quorum_failure, wait_for, zranges, Kind, Losses, Paused, MUTEX_KEY};
use crate::common::node::Node;
use crate::common::timing::{ms, sleep, t, t_builder, OUTLIVE};
use crate::common::Env;

const SEM3: Kind = Kind::Semaphore { limit: 3 };
const MULTI_3_1: Kind = Kind::Multi {
    limit: 3,
    permits: 1,
};
const MULTI_3_2: Kind = Kind::Multi {
    limit: 3,
    permits: 2,
};

/// Patient enough for a restarted real node to be reconnected.
fn patient() -> LockOptions {
    t_builder()
        .acquire_timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

/// Whether `node` has nothing of `kind`'s key.
fn clean(kind: Kind, node: &dyn Node) -> bool {
    match kind {
        Kind::Mutex => node.get(MUTEX_KEY).is_none(),
        _ => node.zrange(kind.key()).is_empty(),
    }
}

fn assert_clean(kind: Kind, env: &Env, what: &str) {
    for (i, node) in env.nodes.iter().enumerate() {
        assert!(
            clean(kind, &**node),
            "node {} not clean {what}: {:?} {:?}",
            i + 1,
            gets(&env.nodes),
            zranges(&env.nodes)
        );
    }
}

async fn acquire_all(env: &Env, holders: &[Kind], losses: &Losses) -> Vec<(Kind, LockGuard)> {
    let mut guards = Vec::new();
    for &kind in holders {
        guards.push((
            kind,
            kind.lock(env.backends(), losses.t())
                .acquire()
                .await
                .unwrap(),
        ));
    }
    guards
}

/// A fresh acquire of `kind` works on every node and releases cleanly.
async fn works_again(env: &Env, kind: Kind) {
    let g = kind
        .lock(env.backends(), patient())
        .acquire()
        .await
        .unwrap();
    wait_for("a fresh hold on every node", Duration::from_secs(3), || {
        env.nodes.iter().all(|n| kind.holds(&**n, g.identifier()))
    })
    .await;
    g.release().await.unwrap();
    assert_clean(kind, env, "after the final release");
}

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
    sleep(OUTLIVE).await;
    assert!(g.is_acquired());
    assert_eq!(losses.count(), 0, "{:?}", losses.messages());
    g.release().await.unwrap();
    assert_eq!(gets(&env.nodes[..2]), [None, None]);
    env.nodes[2].start();
    works_again(&env, Kind::Mutex).await;
}

/// RLM-12, RLS-14, RLMS-15: each node in turn is stopped while the locks
/// are held. The others keep the holds (no loss), a contender is refused
/// with a quorum error naming the stopped node, and once the node is back
/// the next refresh gives it every hold again.
async fn each_node_outage(env: Env, holders: &[Kind], probe: Kind) {
    let losses = Losses::default();
    let guards = acquire_all(&env, holders, &losses).await;
    for down in 0..3 {
        env.nodes[down].stop();
        sleep(OUTLIVE).await;
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
        let q = quorum_failure(probe.lock(env.backends(), t()).acquire().await.unwrap_err());
        assert_eq!(
            (q.operation, q.succeeded, q.total, q.quorum),
            ("acquired", 0, 3, 2),
            "{}",
            q.message
        );
        assert_eq!(q.nodes(), [1, 2, 3], "{}", q.message);
        for node in (1..=3).filter(|n| *n != down + 1) {
            assert!(q.reason(node).contains("held"), "{}", q.message);
        }
        assert!(
            !q.reason(down + 1).contains("held"),
            "node {} is down, not busy: {}",
            down + 1,
            q.message
        );

        env.nodes[down].start();
        wait_for(
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
    assert_eq!(losses.count(), 0, "{:?}", losses.messages());
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
        wait_for(
            "every holder reports the loss",
            Duration::from_secs(3),
            || losses.count() >= guards.len(),
        )
        .await;
        for (kind, g) in &guards {
            assert!(!g.is_acquired());
            assert!(
                kind.lacks(&*env.nodes[survivor], g.identifier()),
                "not released on the survivor"
            );
            let err = g.lost().await;
            assert!(
                matches!(
                    err,
                    LockError::Lost {
                        reason: LostReason::QuorumLost { quorum: 2, .. },
                        ..
                    }
                ),
                "{err:?}"
            );
        }
        assert!(
            clean(contender, &*env.nodes[survivor]),
            "survivor not clean"
        );
        sleep(ms(300)).await;
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
        assert_eq!(
            (q.operation, q.succeeded, q.total, q.quorum),
            ("acquired", 1, 3, 2),
            "{}",
            q.message
        );
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
        assert!(
            clean(contender, &*env.nodes[survivor]),
            "the contender's partial hold stayed on the survivor"
        );

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

/// GAP-19 / issue: one node paused (SIGSTOP, or a mock hang). With a 100 ms
/// command timeout, acquire and release succeed on the other two without
/// waiting for it, and so does refresh: the lock outlives its lock timeout.
async fn paused(env: Env, kind: Kind, idx: usize) {
    let losses = Losses::default();
    let lock = kind.lock(
        env.backends(),
        losses.options(
            t_builder()
                .command_timeout(ms(100))
                .acquire_timeout(Duration::from_secs(3)),
        ),
    );
    let pause = Paused::new(&*env.nodes[idx]);
    let others: Vec<usize> = (0..3).filter(|i| *i != idx).collect();

    for round in ["first", "second"] {
        let start = Instant::now();
        let acquired = lock.acquire().await;
        let took = start.elapsed();
        let g = acquired.unwrap_or_else(|e| {
            panic!(
                "{round} acquire, node {} paused, failed after {took:?}: {e}",
                idx + 1
            )
        });
        assert!(
            took < Duration::from_secs(2),
            "acquire took {took:?} with a 100ms command timeout"
        );
        for &i in &others {
            assert!(kind.holds(&*env.nodes[i], g.identifier()), "node {}", i + 1);
        }
        if round == "second" {
            sleep(OUTLIVE).await;
            assert!(
                g.is_acquired(),
                "refresh must keep the lock with one node paused: {:?}",
                losses.messages()
            );
            assert_eq!(losses.count(), 0, "{:?}", losses.messages());
            for &i in &others {
                assert!(
                    kind.holds(&*env.nodes[i], g.identifier()),
                    "node {} after the lock timeout",
                    i + 1
                );
            }
        }
        let start = Instant::now();
        let released = g.release().await;
        let took = start.elapsed();
        released.unwrap_or_else(|e| {
            panic!(
                "{round} release, node {} paused, failed after {took:?}: {e}",
                idx + 1
            )
        });
        assert!(took < Duration::from_secs(1), "release took {took:?}");
        for &i in &others {
            assert!(clean(kind, &*env.nodes[i]), "node {} after release", i + 1);
        }
    }

    pause.resume();
    // Commands queued while paused may run now; whatever they leave expires.
    wait_for("the resumed node is clean", Duration::from_secs(3), || {
        clean(kind, &*env.nodes[idx])
    })
    .await;
    works_again(&env, kind).await;
}

/// GAP-19 / issue: a contender's attempt is bounded by the command timeout
/// despite a paused node, and its quorum error names that node as timed
/// out.
pub async fn mutex_paused_node_bounds_a_contender(env: Env) {
    // a holder that does not refresh during the scenario
    let g = Kind::Mutex
        .lock(env.backends(), LockOptions::default())
        .acquire()
        .await
        .unwrap();
    let pause = Paused::new(&*env.nodes[1]);
    for options in [
        t_builder()
            .command_timeout(ms(100))
            .max_attempts(1)
            .build()
            .unwrap(),
        t_builder()
            .command_timeout(ms(100))
            .acquire_timeout(ms(300))
            .build()
            .unwrap(),
    ] {
        let contender = Kind::Mutex.lock(env.backends(), options);
        let start = Instant::now();
        let err = contender.acquire().await.unwrap_err();
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "gave up after {took:?} with a 100ms command timeout"
        );
        let q = quorum_failure(err);
        assert_eq!(
            (q.operation, q.succeeded, q.total, q.quorum),
            ("acquired", 0, 3, 2),
            "{}",
            q.message
        );
        assert_eq!(q.nodes(), [1, 2, 3], "{}", q.message);
        assert!(q.reason(2).contains("timed out"), "{}", q.message);
        assert!(
            q.reason(1).contains("held") && q.reason(3).contains("held"),
            "{}",
            q.message
        );
    }
    pause.resume();
    g.release().await.unwrap();
    wait_for("every node is clean", Duration::from_secs(3), || {
        gets(&env.nodes) == [None, None, None]
    })
    .await;
}

/// GAP-19: node 1 paused, mutex.
pub async fn mutex_paused_node(env: Env) {
    paused(env, Kind::Mutex, 0).await;
}

/// GAP-19: node 2 paused, semaphore.
pub async fn sem_paused_node(env: Env) {
    paused(env, Kind::Semaphore { limit: 1 }, 1).await;
}

/// GAP-19: node 3 paused, multi-semaphore.
pub async fn multi_paused_node(env: Env) {
    paused(env, MULTI_3_2, 2).await;
}

/// Cancel safety: dropping an acquire whose attempt is in flight (held up
/// by a hung node after the others said yes) removes those partial holds
/// promptly, long before the lock timeout.
pub async fn mutex_cancel_with_a_hung_node(env: Env) {
    let options = t_builder()
        .lock_timeout(Duration::from_secs(3))
        .refresh_interval(ms(500))
        .command_timeout(Duration::from_secs(1))
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let lock = Kind::Mutex.lock(env.backends(), options);
    let pause = Paused::new(&*env.nodes[2]);
    let mut acquire = Box::pin(lock.acquire());
    if let Either::Left((r, _)) = select(acquire.as_mut(), std::pin::pin!(sleep(ms(150)))).await {
        panic!("acquire finished before the hung node's command timeout: {r:?}");
    }
    let partial = gets(&env.nodes[..2]);
    assert!(
        partial.iter().all(Option::is_some),
        "the attempt should hold nodes 1 and 2 now: {partial:?}"
    );
    let start = Instant::now();
    drop(acquire);
    wait_for(
        "the abandoned attempt is undone",
        Duration::from_millis(1500),
        || gets(&env.nodes[..2]) == [None, None],
    )
    .await;
    assert!(start.elapsed() < Duration::from_secs(2));
    pause.resume();
    wait_for("the resumed node is clean", Duration::from_secs(5), || {
        env.nodes[2].get(MUTEX_KEY).is_none()
    })
    .await;
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
    sleep(OUTLIVE).await;
    assert!(g.is_acquired());
    assert_eq!(losses.count(), 0, "{:?}", losses.messages());

    env.nodes[3].stop();
    wait_for("the loss is reported", Duration::from_secs(3), || {
        losses.count() > 0
    })
    .await;
    assert!(!g.is_acquired());
    let err = g.lost().await;
    assert!(
        matches!(
            err,
            LockError::Lost {
                reason: LostReason::QuorumLost { quorum: 3, .. },
                ..
            }
        ),
        "{err:?}"
    );
    for i in [1, 4] {
        assert!(clean(kind, &*env.nodes[i]), "node {} not released", i + 1);
    }
    let q = quorum_failure(kind.lock(env.backends(), t()).acquire().await.unwrap_err());
    assert_eq!(
        (q.operation, q.succeeded, q.total, q.quorum),
        ("acquired", 2, 5, 3),
        "{}",
        q.message
    );
    assert_eq!(q.nodes(), [1, 3, 4], "{}", q.message);
    for i in [1, 4] {
        assert!(
            clean(kind, &*env.nodes[i]),
            "node {}: the contender's partial hold stayed",
            i + 1
        );
    }
    sleep(ms(200)).await;
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

/// GAP-12 validity (mock only: needs per-node latency). When every node
/// says yes but the attempt took longer than the lock timeout minus the
/// drift allowance, the acquisition does not count: it is undone and the
/// acquire times out. A quick attempt's validity runs from the attempt's
/// start: lock timeout minus the drift allowance (1% + 2 ms).
pub async fn validity_excludes_slow_quorums(env: Env) {
    if !env.mock {
        return;
    }
    let nodes: Vec<MockBackend> = (0..3).map(|_| MockBackend::new()).collect();
    nodes[2].set_latency(ms(300));
    let options = LockOptions::builder()
        .lock_timeout(ms(200))
        .refresh_interval(ms(100))
        .command_timeout(Duration::from_secs(2))
        .acquire_timeout(ms(500))
        .build()
        .unwrap();
    let slow = RedlockMutex::with_options(nodes.clone(), "key", options).unwrap();
    let err = slow.acquire().await.unwrap_err();
    assert!(err.is_timeout(), "every node said yes, too late: {err:?}");
    assert!(
        nodes[0].script_calls("mutex_release") >= 1,
        "the late quorum was not undone"
    );
    assert!(
        nodes[1].script_calls("mutex_release") >= 1,
        "the late quorum was not undone"
    );
    for n in &nodes {
        assert_eq!(n.get(MUTEX_KEY), None);
    }

    nodes[2].set_latency(ms(50));
    let options = LockOptions::builder()
        .lock_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let quick = RedlockMutex::with_options(nodes.clone(), "key", options).unwrap();
    let before = Instant::now();
    let g = quick.acquire().await.unwrap();
    let after = Instant::now();
    let usable = ms(1000 - 12);
    assert!(
        g.valid_until() >= before + usable,
        "validity {:?} short",
        g.valid_until() - before
    );
    assert!(
        g.valid_until() <= after + usable - ms(50),
        "validity must not count the 50ms the attempt took: {:?} left at return",
        g.valid_until() - after
    );
    assert!(g.is_acquired());
    g.release().await.unwrap();
    for n in &nodes {
        assert_eq!(n.get(MUTEX_KEY), None);
    }
}
