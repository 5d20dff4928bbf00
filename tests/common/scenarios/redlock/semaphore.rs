//! RedlockSemaphore (RLS-*) and RedlockMultiSemaphore (RLMS-*) behaviours on
//! 3 nodes, plus GAP-11 and the limit-respecting refresh fill (GAP-12).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::future::{join_all, select, Either};
use redsem_core::{
    LockError, LockGuard, LockKind, LockOptions, LostReason, RedlockMultiSemaphore,
    RedlockSemaphore,
};

use super::{quorum_failure, sorted, wait_for, zranges, Backend, Kind, Losses, SEM_KEY as KEY};
use crate::common::timing::{ms, sleep, t, t_builder, OUTLIVE};
use crate::common::Env;

const SEM1: Kind = Kind::Semaphore { limit: 1 };
const SEM2: Kind = Kind::Semaphore { limit: 2 };
const SEM3: Kind = Kind::Semaphore { limit: 3 };
const MULTI_3_1: Kind = Kind::Multi {
    limit: 3,
    permits: 1,
};
const MULTI_3_2: Kind = Kind::Multi {
    limit: 3,
    permits: 2,
};
const MULTI_3_3: Kind = Kind::Multi {
    limit: 3,
    permits: 3,
};
const MULTI_4_2: Kind = Kind::Multi {
    limit: 4,
    permits: 2,
};

/// Every node's ZSET, sorted, is exactly `want` (sorted here).
fn assert_everywhere(env: &Env, want: Vec<String>, what: &str) {
    let want = sorted(want);
    for (i, members) in zranges(&env.nodes).into_iter().enumerate() {
        assert_eq!(sorted(members), want, "node {}: {what}", i + 1);
    }
}

fn members_of(pairs: &[(Kind, &LockGuard)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, g)| k.members(g.identifier()))
        .collect()
}

/// RLS-01, RLMS-01: limit 0, permits 0, permits above the limit, an empty
/// key and an empty node list are rejected, naming the argument.
pub async fn invalid_arguments(env: Env) {
    let option = |e: LockError| match e {
        LockError::InvalidOption { option, .. } => option,
        other => panic!("expected InvalidOption, got {other:?}"),
    };
    assert_eq!(
        option(RedlockSemaphore::new(env.backends(), "key", 0).unwrap_err()),
        "limit"
    );
    assert_eq!(
        option(RedlockSemaphore::new(env.backends(), "", 1).unwrap_err()),
        "key"
    );
    assert_eq!(
        option(RedlockSemaphore::<Backend>::new(Vec::new(), "key", 1).unwrap_err()),
        "nodes"
    );
    assert_eq!(
        option(RedlockMultiSemaphore::new(env.backends(), "key", 3, 0).unwrap_err()),
        "permits"
    );
    assert_eq!(
        option(RedlockMultiSemaphore::new(env.backends(), "key", 0, 1).unwrap_err()),
        "limit"
    );
    assert_eq!(
        option(RedlockMultiSemaphore::new(env.backends(), "key", 2, 3).unwrap_err()),
        "permits"
    );
    assert_eq!(
        option(RedlockMultiSemaphore::new(env.backends(), "", 3, 1).unwrap_err()),
        "key"
    );
    assert_eq!(
        option(RedlockMultiSemaphore::<Backend>::new(Vec::new(), "key", 3, 1).unwrap_err()),
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
        let pttl = node.pttl(KEY);
        assert!(
            (9_000..=10_000).contains(&pttl),
            "default lock timeout 10s, PTTL {pttl}"
        );
    }
    g1.release().await.unwrap();
    assert_everywhere(
        &env,
        b.members(g2.identifier()),
        "after releasing the first",
    );
    g2.release().await.unwrap();
    assert_everywhere(&env, Vec::new(), "after releasing both");
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
    assert!(err.is_timeout(), "all nodes busy is a timeout: {err:?}");
    let want = format!("Acquire {} semaphore:key timeout", waiter.name());
    assert!(err.to_string().starts_with(&want), "{err}");
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
    let w = waiter.lock(
        env.backends(),
        t_builder()
            .acquire_timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    );
    let acquire = std::pin::pin!(w.acquire());
    if let Either::Left((r, _)) = select(acquire, std::pin::pin!(sleep(ms(50)))).await {
        panic!("acquire returned while the semaphore was full: {r:?}");
    }
    g.release().await.unwrap();
    sleep(ms(100)).await;
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

/// Refresh keeps both holders on every node past the lock timeout.
async fn refresh_keeps(env: Env, a: Kind, b: Kind) {
    let losses = Losses::default();
    let g1 = a.lock(env.backends(), losses.t()).acquire().await.unwrap();
    let g2 = b.lock(env.backends(), losses.t()).acquire().await.unwrap();
    sleep(OUTLIVE).await;
    assert!(g1.is_acquired() && g2.is_acquired());
    assert_eq!(losses.count(), 0, "{:?}", losses.messages());
    assert_everywhere(&env, members_of(&[(a, &g1), (b, &g2)]), "refreshed holders");
    g1.release().await.unwrap();
    assert_everywhere(
        &env,
        b.members(g2.identifier()),
        "after releasing the first",
    );
    g2.release().await.unwrap();
    assert_everywhere(&env, Vec::new(), "after releasing both");
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
    sleep(OUTLIVE).await;
    assert_everywhere(
        &env,
        b.members(g2.identifier()),
        "the stopped holder was pruned",
    );
    assert!(!g1.is_acquired() && g2.is_acquired());
    g2.stop_refresh();
    sleep(OUTLIVE).await;
    assert_everywhere(&env, Vec::new(), "both expired");
    for g in [g1, g2] {
        let lost = g.lost().await;
        assert!(
            matches!(
                lost,
                LockError::Lost {
                    reason: LostReason::Expired,
                    ..
                }
            ),
            "{lost}"
        );
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
    let start = Instant::now();
    let batch1: Vec<LockGuard> =
        join_all((0..3).map(|_| async { kind.lock(env.backends(), options()).acquire().await }))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let ids1: Vec<String> = batch1
        .iter()
        .flat_map(|g| kind.members(g.identifier()))
        .collect();
    assert_everywhere(&env, ids1.clone(), "batch 1 fills the limit");

    let batch2: Vec<LockGuard> =
        join_all((0..3).map(|_| async { kind.lock(env.backends(), options()).acquire().await }))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let waited = start.elapsed();
    assert!(
        waited >= ms(TTL as u64 - 20),
        "batch 2 got in after {waited:?}, before batch 1 expired"
    );
    let ids2: Vec<String> = batch2
        .iter()
        .flat_map(|g| kind.members(g.identifier()))
        .collect();
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

/// RLS-08/09, RLMS-08/09: a hold made elsewhere is taken over and kept
/// alive on every node; release empties every node.
async fn external(env: Env, kind: Kind) {
    let ext = kind.lock(
        env.backends(),
        t_builder()
            .refresh_interval(Duration::ZERO)
            .build()
            .unwrap(),
    );
    let id = ext.acquire().await.unwrap().detach();
    let local = kind.lock(
        env.backends(),
        t_builder()
            .identifier(&id)
            .acquired_externally(true)
            .build()
            .unwrap(),
    );
    let g = local.acquire().await.unwrap();
    assert_eq!(g.identifier(), id);
    sleep(OUTLIVE).await;
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

/// RLS-10/11, RLMS-10/11: the ZSET is replaced by aaa, bbb, ccc on every
/// node: the loss is reported once, and the others' members stay.
async fn lost_when_replaced(env: Env, kind: Kind) {
    let losses = Losses::default();
    let g = kind
        .lock(env.backends(), losses.t())
        .acquire()
        .await
        .unwrap();
    for node in &env.nodes {
        node.del(KEY);
        let now = node.now_ms();
        for m in ["aaa", "bbb", "ccc"] {
            node.zadd(KEY, now, m);
        }
    }
    wait_for("the loss is reported", Duration::from_secs(2), || {
        losses.count() > 0
    })
    .await;
    assert!(!g.is_acquired());
    let others: Vec<String> = ["aaa", "bbb", "ccc"].map(String::from).to_vec();
    assert_everywhere(&env, others, "the other members are untouched");
    let err = g.lost().await;
    let want = format!("Lost {} for key semaphore:key", kind.name());
    assert!(err.to_string().starts_with(&want), "{err}");
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
    sleep(ms(300)).await;
    assert_eq!(losses.count(), 1, "reported once: {:?}", losses.messages());
    losses.assert_all_lost(kind);
    assert!(g.release().await.unwrap_err().is_lost());
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
        sleep(ms(200)).await;
        assert_everywhere(
            &env,
            members_of(&[(kind, &g1), (kind, &g2)]),
            "both holders",
        );
        g1.release().await.unwrap();
        g2.release().await.unwrap();
        assert_everywhere(&env, Vec::new(), "after release");
        sleep(ms(200)).await;
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
        t_builder()
            .lock_timeout(ms(400))
            .refresh_interval(Duration::ZERO)
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
    sleep(ms(150)).await;
    let g2 = s2.acquire().await.unwrap();
    let err = s3.acquire().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("Acquire {} semaphore:key timeout", kind.name())),
        "{err}"
    );
    sleep(ms(300)).await; // g1 is older than the lock timeout now
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
    sleep(ms(300)).await; // a few refresh ticks, before "intruder" expires by score
    assert_eq!(
        zranges(&env.nodes),
        [
            vec![id.clone()],
            vec![id.clone()],
            vec!["intruder".to_owned()]
        ]
    );
    assert!(g.is_acquired());
    assert_eq!(losses.count(), 0, "{:?}", losses.messages());
    wait_for(
        "node 3 gets the hold once the intruder expired",
        Duration::from_secs(3),
        || node3.zrange(KEY) == [id.clone()],
    )
    .await;
    assert!(g.is_acquired());
    g.release().await.unwrap();
    assert_everywhere(&env, Vec::new(), "after release");
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
    assert!(
        err.to_string()
            .starts_with("Acquire redlock-multi-semaphore semaphore:key timeout"),
        "{err}"
    );
    let err = SEM3.lock(env.backends(), t()).acquire().await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Acquire redlock-semaphore semaphore:key timeout"),
        "{err}"
    );
    m1.release().await.unwrap();
    assert_everywhere(
        &env,
        vec![s1.identifier().to_owned()],
        "after releasing the multi",
    );
    s1.release().await.unwrap();
    assert_everywhere(&env, Vec::new(), "after release");
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
    let lock = MULTI_3_2.lock(
        env.backends(),
        t_builder().identifier("ours").build().unwrap(),
    );
    let others = || vec![vec!["x".to_owned(), "y".to_owned()]; 2];

    fill_others(&env);
    assert!(
        lock.try_acquire().await.unwrap().is_none(),
        "only node 1 has room"
    );
    assert_eq!(
        env.nodes[0].zrange(KEY),
        Vec::<String>::new(),
        "ours_0/ours_1 left on node 1"
    );
    assert_eq!(zranges(&env.nodes[1..]), others());

    fill_others(&env);
    let err = lock.acquire().await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(
        env.nodes[0].zrange(KEY),
        Vec::<String>::new(),
        "ours_0/ours_1 left on node 1"
    );
    assert_eq!(zranges(&env.nodes[1..]), others());

    // node 2 full, node 3 down: a failed quorum with an error
    fill_others(&env);
    env.nodes[2].stop();
    let q = quorum_failure(lock.try_acquire().await.unwrap_err());
    assert_eq!(
        (q.operation, q.succeeded, q.total, q.quorum),
        ("acquired", 1, 3, 2),
        "{}",
        q.message
    );
    assert_eq!(q.nodes(), [2, 3], "{}", q.message);
    assert_eq!(
        env.nodes[0].zrange(KEY),
        Vec::<String>::new(),
        "ours_0/ours_1 left on node 1"
    );
    assert_eq!(env.nodes[1].zrange(KEY), ["x", "y"]);
    env.nodes[2].start();
}
