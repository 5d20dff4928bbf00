//! The ZSET's scores and TTL: fairness by expiry, the key's TTL, and scores
//! taken from the server's clock.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use redsem_core::LockGuard;

use super::{score_of, AnySem, KEY, PATIENCE};
use crate::common::scenarios::support::{no_refresh, sorted};
use crate::common::timing::{ms, t};
use crate::common::Env;

/// SEM-07, MSEM-07: a batch of `limit` waiters gets in only once the first
/// batch's members expired by score; the limit is never exceeded.
pub(crate) async fn fairness_batches_with(env: Env, permits: u32) {
    const LOCK_MS: i64 = 200;
    let node = env.node();
    let options = || {
        no_refresh()
            .lock_timeout(ms(LOCK_MS as u64))
            .acquire_timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let batch = || {
        (0..3)
            .map(|_| AnySem::new(&env, 3, permits, options()))
            .collect::<Vec<_>>()
    };
    let (locks1, locks2) = (batch(), batch());
    let members = |locks: &[AnySem], guards: &[LockGuard]| {
        sorted(
            locks
                .iter()
                .zip(guards)
                .flat_map(|(l, g)| l.members(g.identifier())),
        )
    };

    let batch1: Vec<LockGuard> = join_all(locks1.iter().map(AnySem::acquire))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids1 = members(&locks1, &batch1);
    let scores1 = node.zrange_with_scores(KEY);
    assert_eq!(
        sorted(scores1.iter().map(|(m, _)| m)),
        ids1,
        "ZCARD 3, batch 1's members"
    );
    let oldest1 = scores1.iter().map(|(_, s)| *s).min().unwrap();
    let newest1 = scores1.iter().map(|(_, s)| *s).max().unwrap();

    let done = AtomicBool::new(false);
    let max_seen = AtomicUsize::new(0);
    let watch = async {
        while !done.load(Ordering::SeqCst) {
            max_seen.fetch_max(node.zrange(KEY).len(), Ordering::SeqCst);
            env.time.sleep(ms(5)).await;
        }
    };
    let waiters = async {
        let b = join_all(locks2.iter().map(AnySem::acquire)).await;
        done.store(true, Ordering::SeqCst);
        b
    };
    let (batch2, ()) = futures::join!(waiters, watch);
    let batch2: Vec<LockGuard> = batch2.into_iter().map(Result::unwrap).collect();
    assert!(
        max_seen.load(Ordering::SeqCst) <= 3,
        "ZCARD went above the limit"
    );

    let ids2 = members(&locks2, &batch2);
    let scores2 = node.zrange_with_scores(KEY);
    assert_eq!(
        sorted(scores2.iter().map(|(m, _)| m)),
        ids2,
        "ZCARD 3, batch 2's members only"
    );
    assert!(ids1.iter().all(|id| !ids2.contains(id)));
    // On the server's clock: nobody of batch 2 got in before a member of
    // batch 1 had expired, and the last only once all of them had.
    for (m, s) in &scores2 {
        assert!(
            *s >= oldest1 + LOCK_MS - 2,
            "{m} got in at {s}, batch 1 from {oldest1}"
        );
    }
    let newest2 = scores2.iter().map(|(_, s)| *s).max().unwrap();
    assert!(
        newest2 >= newest1 + LOCK_MS - 2,
        "batch 2 full at {newest2}, batch 1 until {newest1}"
    );

    for g in batch1 {
        assert!(
            g.release().await.unwrap_err().is_lost(),
            "batch 1 had expired"
        );
    }
    for g in batch2 {
        // It may have expired meanwhile on a slow machine; either way its
        // members are removed.
        let _ = g.release().await;
    }
    assert!(node.zrange(KEY).is_empty());
}

/// SEM-07.
pub async fn fairness_batches(env: Env) {
    fairness_batches_with(env, 0).await;
}

/// WIRE-14: the ZSET's TTL is the lock timeout of the last successful
/// acquire; a failed acquire leaves it alone.
pub(crate) async fn ttl_is_the_lock_timeout_with(env: Env, limit: u32, permits: u32) {
    let node = env.node();
    let short = AnySem::new(&env, limit, permits, no_refresh().build().unwrap());
    let g1 = short.acquire().await.unwrap();
    let pttl = node.pttl(KEY);
    assert!(
        (400..=500).contains(&pttl),
        "PTTL {pttl} after a 500ms acquire"
    );

    // A failed acquire (the key is full for a caller asking more than is
    // left) with a long lock timeout does not touch the TTL.
    let long = || {
        no_refresh()
            .lock_timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let used = node.zrange(KEY).len() as u32;
    let greedy = AnySem::new(&env, used, permits, long());
    assert!(greedy.try_acquire().await.unwrap().is_none());
    let pttl = node.pttl(KEY);
    assert!(
        (0..=500).contains(&pttl),
        "PTTL {pttl} after a failed acquire"
    );

    // A successful one sets it to its own lock timeout.
    let g2 = AnySem::new(&env, limit, permits, long())
        .acquire()
        .await
        .unwrap();
    let pttl = node.pttl(KEY);
    assert!(
        (4_000..=5_000).contains(&pttl),
        "PTTL {pttl} after a 5s acquire"
    );
    let _ = g1.release().await;
    g2.release().await.unwrap();
}

/// WIRE-14.
pub async fn ttl_is_the_lock_timeout(env: Env) {
    ttl_is_the_lock_timeout_with(env, 3, 0).await;
}

/// SEM-19..22, SEM-26 (redsem: scores are the server's clock, not the
/// client's): members are scored with the server's TIME, refresh moves the
/// score to the server's now; a member scored in the future counts, one
/// older than the lock timeout does not.
pub(crate) async fn scores_are_the_server_clock_with(env: Env, permits: u32) {
    let node = env.node();
    let lock = AnySem::new(&env, 3, permits, t());
    // Every member has one score, within a second of the server's now.
    let one_score_near_now = |what: &str| {
        let now = node.now_ms();
        let scored = node.zrange_with_scores(KEY);
        let score = scored[0].1;
        assert!(
            (now - score).abs() <= 1_000,
            "score {score}, server now {now}"
        );
        assert!(
            scored.iter().all(|(_, s)| *s == score),
            "{what}: {scored:?}"
        );
        (scored, score)
    };
    let g = lock.acquire().await.unwrap();
    let (scored, first) = one_score_near_now("one score per hold");
    let members = lock.members(g.identifier());
    assert_eq!(sorted(scored.iter().map(|(m, _)| m)), sorted(&members));

    env.time
        .wait_until("a refresh to move the score", PATIENCE, || {
            score_of(node, &members[0]).is_some_and(|s| s > first)
        })
        .await;
    one_score_near_now("refreshed together");
    g.release().await.unwrap();

    // SEM-20/21: a member from a client whose clock runs ahead still counts.
    let one = AnySem::new(&env, permits.max(1), permits, t());
    node.zadd(KEY, node.now_ms() + 450, "ahead");
    assert!(one.try_acquire().await.unwrap().is_none());
    // SEM-22: one older than the lock timeout is pruned and lets us in.
    node.del(KEY);
    node.zadd(KEY, node.now_ms() - 550, "stale");
    let g = one
        .try_acquire()
        .await
        .unwrap()
        .expect("the stale member is pruned");
    assert_eq!(node.zrange(KEY), one.members(g.identifier()));
    g.release().await.unwrap();
}

/// SEM-19..22, SEM-26.
pub async fn scores_are_the_server_clock(env: Env) {
    scores_are_the_server_clock_with(env, 0).await;
}
