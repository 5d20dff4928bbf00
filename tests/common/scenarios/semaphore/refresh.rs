//! Refresh on and off: holders kept alive or pruned, reuse over several
//! lifecycles, and the scripts falling back to EVAL after `SCRIPT FLUSH`.

use super::{
    expires_with_the_key, pruned_after_stop_refresh, release_in_turn, score_of, sem, AnySem, KEY,
    PATIENCE,
};
use crate::common::scenarios::support::{assert_timeout, no_refresh, sorted};
use crate::common::timing::{ms, t, OUTLIVE};
use crate::common::Env;

/// SEM-05: refresh keeps every holder past the lock timeout.
pub async fn refresh_keeps_the_holders(env: Env) {
    let g1 = sem(&env, 2).acquire().await.unwrap();
    let g2 = sem(&env, 2).acquire().await.unwrap();
    env.time.sleep(OUTLIVE).await;
    assert_eq!(
        sorted(env.node().zrange(KEY)),
        sorted([g1.identifier(), g2.identifier()])
    );
    assert!(g1.is_acquired() && g2.is_acquired());
    let id2 = g2.identifier().to_owned();
    release_in_turn(env.node(), g1, g2, &[id2]).await;
}

/// SEM-06, GAP-20: after stop_refresh a holder is pruned by the others'
/// refresh (not early), the guard reports `Expired`; the last one goes
/// with the key's TTL.
pub async fn stop_refresh_lets_it_expire(env: Env) {
    let g1 = sem(&env, 2).acquire().await.unwrap();
    let g2 = sem(&env, 2).acquire().await.unwrap();
    let id2 = g2.identifier().to_owned();
    pruned_after_stop_refresh(&env, &g1, &[id2]).await;
    assert!(!g1.is_acquired());
    assert!(g2.is_acquired());

    expires_with_the_key(&env, &g2).await;
    assert!(g1.release().await.unwrap_err().is_lost());
    assert!(g2.release().await.unwrap_err().is_lost());
}

/// SEM-12, MSEM-12, GAP-10: reuse with refresh on; a released hold never
/// comes back.
pub(crate) async fn reuse_with_refresh_with(env: Env, limit: u32, permits: u32) {
    let s1 = AnySem::new(&env, limit, permits, t());
    let s2 = AnySem::new(&env, limit, permits, t());
    for _ in 0..3 {
        let g1 = s1.acquire().await.unwrap();
        let g2 = s2.acquire().await.unwrap();
        env.time.sleep(ms(300)).await;
        let mut both = s1.members(g1.identifier());
        both.extend(s2.members(g2.identifier()));
        assert_eq!(sorted(env.node().zrange(KEY)), sorted(both));
        g1.release().await.unwrap();
        g2.release().await.unwrap();
        assert_eq!(env.node().pttl(KEY), -2);
        env.time.sleep(ms(300)).await;
        assert_eq!(env.node().pttl(KEY), -2, "no resurrection after release");
    }
}

/// SEM-12.
pub async fn reuse_with_refresh(env: Env) {
    reuse_with_refresh_with(env, 2, 0).await;
}

/// SEM-13, MSEM-13: reuse with refresh off. A holder whose score is older
/// than the lock timeout stays in the ZSET until the next acquire prunes it
/// (and lets a waiter in).
pub(crate) async fn reuse_without_refresh_with(env: Env, limit: u32, permits: u32) {
    let node = env.node();
    let lock = || {
        AnySem::new(
            &env,
            limit,
            permits,
            no_refresh().acquire_timeout(ms(20)).build().unwrap(),
        )
    };
    let (s1, s2, s3) = (lock(), lock(), lock());

    // An ordinary cycle first.
    let g1 = s1.acquire().await.unwrap();
    let g2 = s2.acquire().await.unwrap();
    g1.release().await.unwrap();
    g2.release().await.unwrap();
    assert_eq!(node.pttl(KEY), -2);

    let g1 = s1.acquire().await.unwrap();
    env.time.sleep(ms(250)).await;
    let g2 = s2.acquire().await.unwrap();
    let err = s3.acquire().await.unwrap_err();
    assert_timeout(&err, &s3.timeout_message());

    let (m1, m2) = (s1.members(g1.identifier()), s2.members(g2.identifier()));
    let score1 = score_of(node, &m1[0]).expect("s1 is in the ZSET");
    let score2 = score_of(node, &m2[0]).expect("s2 is in the ZSET");
    env.time
        .wait_until("s1's score to age past the lock timeout", PATIENCE, || {
            node.now_ms() > score1 + 510
        })
        .await;
    assert!(
        node.now_ms() < score2 + 450,
        "precondition: s2 still valid (machine too slow?)"
    );
    let mut both = m1.clone();
    both.extend(m2.iter().cloned());
    assert_eq!(
        sorted(node.zrange(KEY)),
        sorted(both),
        "expired members are pruned lazily"
    );

    let g3 = s3.acquire().await.unwrap();
    let mut expected = m2;
    expected.extend(s3.members(g3.identifier()));
    assert_eq!(
        node.zrange(KEY),
        expected,
        "s1 pruned at s3's acquire; s2 then s3 by score"
    );

    assert!(g1.release().await.unwrap_err().is_lost());
    let _ = g2.release().await; // may have expired on a slow machine
    g3.release().await.unwrap();
    assert!(node.zrange(KEY).is_empty());
}

/// SEM-13.
pub async fn reuse_without_refresh(env: Env) {
    reuse_without_refresh_with(env, 2, 0).await;
}

/// WIRE-11: the acquire, refresh and release scripts fall back to EVAL
/// after SCRIPT FLUSH.
pub(crate) async fn noscript_falls_back_to_eval_with(env: Env, permits: u32) {
    let node = env.node();
    let s1 = AnySem::new(&env, 4, permits, t());
    let g1 = s1.acquire().await.unwrap();
    node.flush_scripts();
    let g2 = s1.acquire().await.unwrap(); // acquire script not cached
    let first = score_of(node, &s1.members(g1.identifier())[0]).unwrap();
    node.flush_scripts();
    env.time
        .wait_until("a refresh without the cached script", PATIENCE, || {
            score_of(node, &s1.members(g1.identifier())[0]).is_some_and(|s| s > first)
        })
        .await;
    assert!(g1.is_acquired() && g2.is_acquired());
    node.flush_scripts();
    g1.release().await.unwrap(); // release script not cached
    g2.release().await.unwrap();
    assert_eq!(node.pttl(KEY), -2);
}

/// WIRE-11.
pub async fn noscript_falls_back_to_eval(env: Env) {
    noscript_falls_back_to_eval_with(env, 0).await;
}
