//! The Redlock validity rule, on mock nodes with per-node latency.

use std::time::{Duration, Instant};

use redsem_core::{LockOptions, RedlockMutex};
use redsem_mock::MockBackend;

use crate::common::scenarios::redlock::MUTEX_KEY;
use crate::common::timing::ms;
use crate::common::Env;

/// GAP-12 validity (mock only: needs per-node latency). When every node
/// says yes but so late that less than a tenth of the lock timeout (the
/// minimum a guard is handed out with) is left after the drift allowance,
/// the acquisition does not count: it is undone and the acquire times out.
/// A quick attempt's validity runs from the attempt's start: lock timeout
/// minus the drift allowance (1% + 2 ms).
pub async fn validity_excludes_slow_quorums(env: Env) {
    if !env.mock {
        return;
    }
    let nodes: Vec<MockBackend> = (0..3).map(|_| MockBackend::new()).collect();
    // cache the scripts, so an undo is one round trip
    let warm = RedlockMutex::new(nodes.clone(), "warm").unwrap();
    warm.acquire().await.unwrap().release().await.unwrap();
    for node in &nodes {
        node.set_latency(ms(185)); // 200 - 4 (drift) - 185 leaves 11 < 20 ms
    }
    let options = LockOptions::builder()
        .lock_timeout(ms(200))
        .refresh_interval(ms(100))
        .command_timeout(ms(195))
        .acquire_timeout(ms(500))
        .build()
        .unwrap();
    let slow = RedlockMutex::with_options(nodes.clone(), "key", options).unwrap();
    let err = slow.acquire().await.unwrap_err();
    assert!(err.is_timeout(), "every node said yes, too late: {err:?}");
    assert!(
        redsem_core::flush(Duration::from_secs(5)).await,
        "undo still running"
    );
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

    nodes[0].set_latency(Duration::ZERO);
    for node in &nodes[1..] {
        node.set_latency(ms(50)); // a quorum needs a 50 ms node
    }
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
