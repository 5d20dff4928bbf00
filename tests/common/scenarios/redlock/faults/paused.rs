//! A paused (SIGSTOPped, or hung mock) node: the other two carry acquire,
//! refresh and release within the command timeout, a contender's attempt is
//! bounded, and a cancelled attempt's partial holds are undone.

use std::time::{Duration, Instant};

use futures::future::{select, Either};
use redsem_core::{LockError, LockOptions};

use super::{clean, works_again};
use crate::common::scenarios::redlock::{
    gets, quorum_failure, Kind, Losses, MULTI_3_2, MUTEX_KEY, SEM1,
};
use crate::common::scenarios::support::Paused;
use crate::common::timing::{ms, t_builder, OUTLIVE};
use crate::common::Env;

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
        let start = env.time.now();
        let acquired = lock.acquire().await;
        let took = env.time.since(start);
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
            env.time.sleep(OUTLIVE).await;
            assert!(
                g.is_acquired(),
                "refresh must keep the lock with one node paused: {:?}",
                losses.messages()
            );
            losses.assert_none();
            for &i in &others {
                assert!(
                    kind.holds(&*env.nodes[i], g.identifier()),
                    "node {} after the lock timeout",
                    i + 1
                );
            }
        }
        let start = env.time.now();
        let released = g.release().await;
        let took = env.time.since(start);
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
    env.time
        .wait_until("the resumed node is clean", Duration::from_secs(3), || {
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
        let start = env.time.now();
        let err = contender.acquire().await.unwrap_err();
        let took = env.time.since(start);
        assert!(
            took < Duration::from_secs(2),
            "gave up after {took:?} with a 100ms command timeout"
        );
        // nodes 1 and 3 say "held": busy, decided without waiting for
        // the paused node 2
        assert!(
            matches!(
                err,
                LockError::Timeout {
                    failed_attempts: 0,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    pause.resume();
    g.release().await.unwrap();
    env.time
        .wait_until("every node is clean", Duration::from_secs(3), || {
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
    paused(env, SEM1, 1).await;
}

/// GAP-19: node 3 paused, multi-semaphore.
pub async fn multi_paused_node(env: Env) {
    paused(env, MULTI_3_2, 2).await;
}

/// Cancel safety: dropping an acquire whose attempt is in flight (held up
/// by two hung nodes after the first said yes) removes that partial hold
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
    let pause_2 = Paused::new(&*env.nodes[1]);
    let pause_3 = Paused::new(&*env.nodes[2]);
    let mut acquire = Box::pin(lock.acquire());
    if let Either::Left((r, _)) =
        select(acquire.as_mut(), std::pin::pin!(env.time.sleep(ms(150)))).await
    {
        panic!("acquire finished before the hung nodes' command timeout: {r:?}");
    }
    assert!(
        env.nodes[0].get(MUTEX_KEY).is_some(),
        "the attempt should hold node 1 now"
    );
    let start = env.time.now();
    drop(acquire);
    env.time
        .wait_until(
            "the abandoned attempt is undone",
            Duration::from_millis(1500),
            || env.nodes[0].get(MUTEX_KEY).is_none(),
        )
        .await;
    assert!(env.time.since(start) < Duration::from_secs(2));
    pause_2.resume();
    pause_3.resume();
    env.time
        .wait_until(
            "the resumed nodes are clean",
            Duration::from_secs(5),
            || gets(&env.nodes[1..]) == [None, None],
        )
        .await;
}

/// Issue 7.3: a hung node costs nothing when the other two answer: acquire,
/// refresh and release each return on the quorum, not after the hung
/// node's command timeout (5 s here), and the hung node's calls finish in
/// the background once it answers.
pub async fn mutex_hung_node_adds_no_delay(env: Env) {
    let options = t_builder()
        .lock_timeout(Duration::from_secs(20))
        .refresh_interval(ms(100))
        .command_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let lock = Kind::Mutex.lock(env.backends(), options);
    let pause = Paused::new(&*env.nodes[2]);
    let start = env.time.now();
    let g = lock.acquire().await.unwrap();
    env.time.sleep(ms(350)).await; // three refresh ticks
    assert!(g.is_acquired());
    g.release().await.unwrap();
    assert!(
        env.time.since(start) < Duration::from_secs(2),
        "a hung node delayed acquire, refresh or release: {:?}",
        env.time.since(start)
    );
    assert_eq!(gets(&env.nodes[..2]), [None, None]);
    pause.resume();
    env.time
        .wait_until("the resumed node is clean", Duration::from_secs(8), || {
            env.nodes[2].get(MUTEX_KEY).is_none()
        })
        .await;
}
