//! The limit on every node: batches of waiters never exceed it, and an
//! attempt that misses quorum leaves no permits behind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use redsem_core::{LockGuard, LockOptions};

use super::assert_everywhere;
use crate::common::scenarios::redlock::{
    quorum_failure, zranges, Kind, MULTI_3_1, MULTI_3_2, SEM3, SEM_KEY as KEY,
};
use crate::common::scenarios::support::fixed_identifier;
use crate::common::timing::ms;
use crate::common::Env;

/// RLS-07 / SEM-07 on every node: a batch fills the limit; a second batch
/// gets in only once the first has expired by score, and the limit of live
/// members is never exceeded on any node.
async fn batches(env: Env, kind: Kind) {
    const TTL: i64 = 300;
    let options = || {
        LockOptions::builder()
            .lock_timeout(ms(TTL as u64))
            .acquire_timeout(Duration::from_secs(5))
            .retry_interval(ms(10))
            .refresh_interval(Duration::ZERO)
            .build()
            .unwrap()
    };
    // Three holders acquiring at once; their guards and members.
    let batch = || async {
        let guards: Vec<LockGuard> = join_all(
            (0..3).map(|_| async { kind.lock(env.backends(), options()).acquire().await }),
        )
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
        let ids: Vec<String> = guards
            .iter()
            .flat_map(|g| kind.members(g.identifier()))
            .collect();
        (guards, ids)
    };
    let start = env.time.now();
    let (_batch1, ids1) = batch().await;
    assert_everywhere(&env, ids1.clone(), "batch 1 fills the limit");

    let (_batch2, ids2) = batch().await;
    let waited = env.time.since(start);
    assert!(
        waited >= ms(TTL as u64 - 20),
        "batch 2 got in after {waited:?}, before batch 1 expired"
    );
    let mut votes: HashMap<&str, usize> = HashMap::new();
    for (i, node) in env.nodes.iter().enumerate() {
        let now = node.now_ms();
        let live: Vec<String> = node
            .zrange_with_scores(KEY)
            .into_iter()
            .filter(|(_, s)| *s > now - TTL)
            .map(|(m, _)| m)
            .collect();
        assert!(live.len() <= 3, "node {}: limit exceeded: {live:?}", i + 1);
        assert!(
            live.iter().all(|m| !ids1.contains(m)),
            "node {}: batch 1 still live: {live:?}",
            i + 1
        );
        for m in &ids2 {
            if live.contains(m) {
                *votes.entry(m.as_str()).or_default() += 1;
            }
        }
    }
    for m in &ids2 {
        assert!(
            votes.get(m.as_str()).copied().unwrap_or(0) >= 2,
            "{m} has no quorum: {votes:?}"
        );
    }
}

/// RLS-07: limit 3.
pub async fn sem_batches_respect_the_limit(env: Env) {
    batches(env, SEM3).await;
}

/// RLMS-07: (3, 1).
pub async fn multi_batches_respect_the_limit(env: Env) {
    batches(env, MULTI_3_1).await;
}

/// GAP-11: an attempt that misses quorum removes every `<id>_i` it placed,
/// whether the other nodes refused or failed.
pub async fn multi_failed_quorum_leaves_no_permits(env: Env) {
    let fill_others = |env: &Env| {
        for node in &env.nodes[1..] {
            node.del(KEY);
            let now = node.now_ms();
            node.zadd(KEY, now, "x");
            node.zadd(KEY, now, "y");
        }
    };
    let lock = MULTI_3_2.lock(env.backends(), fixed_identifier("ours"));
    let node1_is_empty = || {
        assert_eq!(
            env.nodes[0].zrange(KEY),
            Vec::<String>::new(),
            "ours_0/ours_1 left on node 1"
        );
    };
    let others_untouched = || {
        assert_eq!(
            zranges(&env.nodes[1..]),
            vec![vec!["x".to_owned(), "y".to_owned()]; 2]
        );
    };

    fill_others(&env);
    assert!(
        lock.try_acquire().await.unwrap().is_none(),
        "only node 1 has room"
    );
    node1_is_empty();
    others_untouched();

    fill_others(&env);
    let err = lock.acquire().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    node1_is_empty();
    others_untouched();

    // node 2 full, node 3 down: a failed quorum with an error
    fill_others(&env);
    env.nodes[2].stop();
    let q = quorum_failure(lock.try_acquire().await.unwrap_err());
    q.assert_counts("acquired", 1, 3, 2);
    assert_eq!(q.nodes(), [2, 3], "{}", q.message);
    node1_is_empty();
    assert_eq!(env.nodes[1].zrange(KEY), ["x", "y"]);
    env.nodes[2].start();
}
