//! MultiSemaphore behaviours (redis-semaphore MSEM-*, WIRE-07..10/14,
//! GAP-01/16) plus redsem's own guarantees. Scenarios shared with the plain
//! semaphore are the `*_with` functions of the `semaphore` module.

use std::time::Duration;

use redsem_core::{LockError, LockKind, LostReason, MultiSemaphore, Semaphore};

use super::semaphore::{
    acquired_externally_with, assert_lost_once, attempt_limit_with, busy_with, cancel_waiting_with,
    expires_with_the_key, fairness_batches_with, lost_after, node_restart_with,
    noscript_falls_back_to_eval_with, pruned_after_stop_refresh, refill, release_in_turn,
    reuse_with_refresh_with, reuse_without_refresh_with, scores_are_the_server_clock_with,
    shared_instance_respects_limit_with, survives_a_short_pause_with, ttl_is_the_lock_timeout_with,
    AnySem, KEY,
};
use super::support::{
    assert_default_ttl, assert_lost, assert_message, fixed_identifier, invalid_option, no_refresh,
    rejected, sorted, takeover, Backend, LossCount,
};
use crate::common::node::Node;
use crate::common::timing::{t, OUTLIVE};
use crate::common::Env;

fn multi(env: &Env, limit: u32, permits: u32) -> MultiSemaphore<Backend> {
    MultiSemaphore::with_options(env.backend(), "key", limit, permits, t()).unwrap()
}

/// The members `<id>_0 .. <id>_<permits-1>`.
fn members(id: &str, permits: u32) -> Vec<String> {
    (0..permits).map(|i| format!("{id}_{i}")).collect()
}

/// All members of the hold `id` carry one score (one snapshot: a refresh
/// may run between two reads).
fn assert_one_score(node: &dyn Node, id: &str) {
    let prefix = format!("{id}_");
    let scored = node.zrange_with_scores(KEY);
    let mine: Vec<i64> = scored
        .iter()
        .filter(|(m, _)| m.starts_with(&prefix))
        .map(|(_, s)| *s)
        .collect();
    assert!(!mine.is_empty(), "no member of {id} in {scored:?}");
    assert!(mine.iter().all(|s| *s == mine[0]), "{scored:?}");
}

/// Rebuilds the ZSET without `member` (the node interface has no ZREM),
/// keeping the other members' scores. The key then has no TTL.
fn remove_member(env: &Env, member: &str) {
    let node = env.node();
    let kept = node.zrange_with_scores(KEY);
    assert!(
        kept.iter().any(|(m, _)| m == member),
        "{member} not in {kept:?}"
    );
    node.del(KEY);
    for (m, s) in kept.iter().filter(|(m, _)| m != member) {
        node.zadd(KEY, *s, m);
    }
}

/// MSEM-02, MSEM-16, WIRE-07/09/10: a holder of `permits` slots is the
/// members `<id>_0..`, all with one score; release removes them all; an
/// empty ZSET is deleted.
pub async fn acquire_release(env: Env) {
    let node = env.node();
    let s1 = MultiSemaphore::new(env.backend(), "key", 3, 2).unwrap();
    let s2 = MultiSemaphore::new(env.backend(), "key", 3, 1).unwrap();
    assert_eq!(s1.key(), KEY);
    assert_eq!((s1.limit(), s1.permits()), (3, 2));
    let g1 = s1.acquire().await.unwrap();
    let g2 = s2.acquire().await.unwrap();
    assert!(g1.is_acquired() && g2.is_acquired());
    assert_eq!(g1.kind(), LockKind::MultiSemaphore);
    assert_eq!(g1.key(), KEY);
    let (id1, id2) = (g1.identifier().to_owned(), g2.identifier().to_owned());
    let mut all = members(&id1, 2);
    all.extend(members(&id2, 1));
    assert_eq!(sorted(node.zrange(KEY)), sorted(&all));
    assert_one_score(node, &id1);
    assert_default_ttl(node.pttl(KEY));
    release_in_turn(node, g1, g2, &members(&id2, 1)).await;
}

/// MSEM-01, GAP-01: bad arguments are build-time errors naming the
/// argument; `permits > limit` could never be acquired and is rejected.
pub async fn invalid_arguments(env: Env) {
    assert_eq!(
        rejected(MultiSemaphore::new(env.backend(), "", 3, 1)),
        "key"
    );
    assert_eq!(
        rejected(MultiSemaphore::new(env.backend(), "key", 0, 1)),
        "limit"
    );
    assert_eq!(
        rejected(MultiSemaphore::new(env.backend(), "key", 3, 0)),
        "permits"
    );
    let err = MultiSemaphore::new(env.backend(), "key", 3, 4).unwrap_err();
    let message = err.to_string();
    assert_eq!(invalid_option(err), "permits");
    assert!(message.contains("could never be acquired"), "{message}");
    assert_eq!(env.node().pttl(KEY), -2, "nothing reached Redis");

    // permits == limit is fine: the holder takes every slot.
    let all = multi(&env, 3, 3);
    let g = all.acquire().await.unwrap();
    assert_eq!(
        sorted(env.node().zrange(KEY)),
        sorted(members(g.identifier(), 3))
    );
    g.release().await.unwrap();
}

/// MSEM-03: a full key times out with the multi-semaphore message; the key
/// is gone after release.
pub async fn acquire_times_out_when_busy(env: Env) {
    let (holder, waiter) = (AnySem::new(&env, 3, 3, t()), AnySem::new(&env, 3, 1, t()));
    busy_with(env, holder, waiter).await;
}

/// WIRE-07: permits are taken all or nothing; a holder that does not fit
/// adds no member, a smaller one still fits.
pub async fn permits_are_all_or_nothing(env: Env) {
    let node = env.node();
    let g1 = multi(&env, 4, 3).acquire().await.unwrap();
    let held = sorted(members(g1.identifier(), 3));
    let two = multi(&env, 4, 2);
    assert!(two.try_acquire().await.unwrap().is_none());
    assert!(two.acquire().await.unwrap_err().is_timeout());
    assert_eq!(sorted(node.zrange(KEY)), held, "no partial hold");
    let g2 = multi(&env, 4, 1).acquire().await.unwrap();
    assert_eq!(node.zrange(KEY).len(), 4);
    g1.release().await.unwrap();
    assert_eq!(node.zrange(KEY), members(g2.identifier(), 1));
    g2.release().await.unwrap();
}

/// MSEM-04: cancelling a waiting acquire is dropping its future.
pub async fn dropping_a_waiting_acquire_cancels_it(env: Env) {
    cancel_waiting_with(env, 3, 2).await;
}

/// MSEM-05: refresh keeps every member of every holder, under one score per
/// holder.
pub async fn refresh_keeps_all_permits(env: Env) {
    let node = env.node();
    let g1 = multi(&env, 3, 2).acquire().await.unwrap();
    let g2 = multi(&env, 3, 1).acquire().await.unwrap();
    env.time.sleep(OUTLIVE).await;
    let (id1, id2) = (g1.identifier().to_owned(), g2.identifier().to_owned());
    let mut all = members(&id1, 2);
    all.extend(members(&id2, 1));
    assert_eq!(sorted(node.zrange(KEY)), sorted(&all));
    assert_one_score(node, &id1);
    assert!(g1.is_acquired() && g2.is_acquired());
    release_in_turn(node, g1, g2, &members(&id2, 1)).await;
}

/// MSEM-06: after stop_refresh a holder's members are pruned by the others'
/// refresh (not early); the last holder goes with the key's TTL.
pub async fn stop_refresh_lets_it_expire(env: Env) {
    let g1 = multi(&env, 3, 2).acquire().await.unwrap();
    let g2 = multi(&env, 3, 1).acquire().await.unwrap();
    let left = members(g2.identifier(), 1);
    pruned_after_stop_refresh(&env, &g1, &left).await;
    assert!(g2.is_acquired());

    expires_with_the_key(&env, &g2).await;
    assert!(g1.release().await.unwrap_err().is_lost());
    assert!(g2.release().await.unwrap_err().is_lost());
}

/// MSEM-07: SEM-07 with (3, 1).
pub async fn fairness_batches(env: Env) {
    fairness_batches_with(env, 1).await;
}

/// MSEM-08/09: an external hold of 2 permits is taken over; exactly
/// `<id>_0, <id>_1` remain, kept alive by the new owner.
pub async fn acquired_externally(env: Env) {
    acquired_externally_with(env, 3, 2).await;
}

/// redsem: a hold missing one of its members cannot be taken over, and
/// the takeover re-creates nothing.
pub async fn partial_hold_is_not_taken_over(env: Env) {
    let ext_options = no_refresh().build().unwrap();
    let ext = MultiSemaphore::with_options(env.backend(), "key", 3, 2, ext_options).unwrap();
    let id = ext.acquire().await.unwrap().detach();
    remove_member(&env, &format!("{id}_1"));
    let local = MultiSemaphore::with_options(env.backend(), "key", 3, 2, takeover(&id)).unwrap();
    assert!(local.try_acquire().await.unwrap().is_none());
    assert_eq!(env.node().zrange(KEY), [format!("{id}_0")]);
}

/// MSEM-10/11: the key is deleted and refilled by others.
pub async fn lost_when_refilled(env: Env) {
    lost_after(&env, 3, 2, |env, _| refill(env, &["aaa", "bbb", "ccc"])).await;
    assert_eq!(sorted(env.node().zrange(KEY)), ["aaa", "bbb", "ccc"]);
}

/// redsem (stricter than WIRE-08): a hold missing one of its `<id>_i`
/// members is lost at the next refresh, which does not re-create it;
/// release then reports the loss and removes the leftovers.
pub async fn lost_when_a_permit_is_missing(env: Env) {
    let node = env.node();
    let lost = LossCount::default();
    let lock = MultiSemaphore::with_options(env.backend(), "key", 3, 2, lost.t()).unwrap();
    let g = lock.acquire().await.unwrap();
    let other = multi(&env, 3, 1).acquire().await.unwrap();
    let id = g.identifier().to_owned();
    remove_member(&env, &format!("{id}_1"));
    assert_lost_once(&env.time, &g, &lost, "multi-semaphore").await;
    assert!(other.is_acquired(), "the other holder is unaffected");
    let other_member = format!("{}_0", other.identifier());
    assert_eq!(
        sorted(node.zrange(KEY)),
        sorted([format!("{id}_0"), other_member.clone()]),
        "refresh must not re-create the missing member"
    );
    assert!(g.release().await.unwrap_err().is_lost());
    assert_eq!(
        node.zrange(KEY),
        [other_member],
        "release removed the leftover, not the others"
    );
    assert!(other.is_acquired());
    other.release().await.unwrap();
}

/// redsem: releasing a hold that is not fully there reports the loss and
/// leaves other holders alone.
pub async fn release_of_a_partial_hold_reports_loss(env: Env) {
    let options = || no_refresh().build().unwrap();
    let g = MultiSemaphore::with_options(env.backend(), "key", 3, 2, options())
        .unwrap()
        .acquire()
        .await
        .unwrap();
    let other = MultiSemaphore::with_options(env.backend(), "key", 3, 1, options())
        .unwrap()
        .acquire()
        .await
        .unwrap();
    remove_member(&env, &format!("{}_1", g.identifier()));
    assert_lost!(g.release().await.unwrap_err(), LostReason::Gone);
    assert_eq!(env.node().zrange(KEY), members(other.identifier(), 1));
    other.release().await.unwrap();
    assert!(env.node().zrange(KEY).is_empty());
}

/// MSEM-12: SEM-12 with (4, 2).
pub async fn reuse_with_refresh(env: Env) {
    reuse_with_refresh_with(env, 4, 2).await;
}

/// MSEM-13: SEM-13 with (4, 2).
pub async fn reuse_without_refresh(env: Env) {
    reuse_without_refresh_with(env, 4, 2).await;
}

/// MSEM-14, WIRE-10: a MultiSemaphore and a Semaphore count in one ZSET;
/// each times out with its own kind in the message.
pub async fn compatible_with_semaphore(env: Env) {
    let node = env.node();
    let gm = multi(&env, 3, 2).acquire().await.unwrap();
    let gs = Semaphore::with_options(env.backend(), "key", 3, t())
        .unwrap()
        .acquire()
        .await
        .unwrap();
    let mut all = members(gm.identifier(), 2);
    all.push(gs.identifier().to_owned());
    assert_eq!(sorted(node.zrange(KEY)), sorted(&all));

    let err = multi(&env, 3, 2).acquire().await.unwrap_err();
    assert_message(&err, "Acquire multi-semaphore semaphore:key timeout");
    let err = Semaphore::with_options(env.backend(), "key", 3, t())
        .unwrap()
        .acquire()
        .await
        .unwrap_err();
    assert_message(&err, "Acquire semaphore semaphore:key timeout");
    assert_eq!(sorted(node.zrange(KEY)), sorted(&all));

    gm.release().await.unwrap();
    assert_eq!(node.zrange(KEY), [gs.identifier()]);
    gs.release().await.unwrap();
    assert_eq!(node.pttl(KEY), -2);
}

/// MSEM-15: node restart with a (3, 2) holder.
pub async fn node_restart(env: Env) {
    node_restart_with(env, 3, 2, 1).await;
}

/// MSEM-17..19: attempt limit and zero acquire timeout with (5, 2): two
/// holders fit, the free slot is not enough for a third.
pub async fn attempt_limit(env: Env) {
    attempt_limit_with(env, 5, 2).await;
}

/// WIRE-14 with (4, 2).
pub async fn ttl_is_the_lock_timeout(env: Env) {
    ttl_is_the_lock_timeout_with(env, 4, 2).await;
}

/// MSEM-20..24, MSEM-28: scores are the server's clock.
pub async fn scores_are_the_server_clock(env: Env) {
    scores_are_the_server_clock_with(env, 2).await;
}

/// Tasks sharing one (5, 2) instance: never more than 2 holders at once.
pub async fn shared_instance_respects_limit(env: Env) {
    shared_instance_respects_limit_with(env, 5, 2).await;
}

/// redsem: one instance without a fixed identifier holds several times,
/// each with its own members; with a fixed identifier only once.
pub async fn holds_per_instance(env: Env) {
    let node = env.node();
    let s = multi(&env, 4, 2);
    let g1 = s.acquire().await.unwrap();
    let g2 = s
        .try_acquire()
        .await
        .unwrap()
        .expect("room for a second hold");
    assert_ne!(g1.identifier(), g2.identifier());
    let mut all = members(g1.identifier(), 2);
    all.extend(members(g2.identifier(), 2));
    assert_eq!(sorted(node.zrange(KEY)), sorted(&all));
    assert!(s.try_acquire().await.unwrap().is_none());
    g1.release().await.unwrap();
    g2.release().await.unwrap();

    let fixed =
        MultiSemaphore::with_options(env.backend(), "key", 4, 2, fixed_identifier("solo")).unwrap();
    let g = fixed.acquire().await.unwrap();
    let err = fixed.try_acquire().await.unwrap_err();
    assert!(matches!(err, LockError::AlreadyHeld { .. }), "{err}");
    assert_eq!(node.zrange(KEY), ["solo_0", "solo_1"]);
    g.release().await.unwrap();
    let g = fixed.acquire().await.unwrap();
    g.release().await.unwrap();
    assert_eq!(node.pttl(KEY), -2);
}

/// GAP-22: dropping a guard removes all its members in the background.
pub async fn drop_releases(env: Env) {
    let g = multi(&env, 3, 2).acquire().await.unwrap();
    assert_eq!(env.node().zrange(KEY).len(), 2);
    drop(g);
    let node = env.node();
    env.time
        .wait_until(
            "the dropped guard's release",
            Duration::from_secs(2),
            || node.pttl(KEY) == -2,
        )
        .await;
}

/// WIRE-11 with (4, 2).
pub async fn noscript_falls_back_to_eval(env: Env) {
    noscript_falls_back_to_eval_with(env, 2).await;
}

/// GAP-09/19 with (3, 2).
pub async fn survives_a_short_pause(env: Env) {
    survives_a_short_pause_with(env, 3, 2).await;
}

/// Calls `$m! { name: nodes => path, ... }` with this file's scenarios.
macro_rules! multi_semaphore_scenarios {
    ($m:ident) => {
        $m! {
            multi_semaphore_acquire_release: 1 => multi_semaphore::acquire_release,
            multi_semaphore_invalid_arguments: 1 => multi_semaphore::invalid_arguments,
            multi_semaphore_acquire_times_out_when_busy: 1 => multi_semaphore::acquire_times_out_when_busy,
            multi_semaphore_permits_are_all_or_nothing: 1 => multi_semaphore::permits_are_all_or_nothing,
            multi_semaphore_dropping_a_waiting_acquire_cancels_it: 1 => multi_semaphore::dropping_a_waiting_acquire_cancels_it,
            multi_semaphore_refresh_keeps_all_permits: 1 => multi_semaphore::refresh_keeps_all_permits,
            multi_semaphore_stop_refresh_lets_it_expire: 1 => multi_semaphore::stop_refresh_lets_it_expire,
            multi_semaphore_fairness_batches: 1 => multi_semaphore::fairness_batches,
            multi_semaphore_acquired_externally: 1 => multi_semaphore::acquired_externally,
            multi_semaphore_partial_hold_is_not_taken_over: 1 => multi_semaphore::partial_hold_is_not_taken_over,
            multi_semaphore_lost_when_refilled: 1 => multi_semaphore::lost_when_refilled,
            multi_semaphore_lost_when_a_permit_is_missing: 1 => multi_semaphore::lost_when_a_permit_is_missing,
            multi_semaphore_release_of_a_partial_hold_reports_loss: 1 => multi_semaphore::release_of_a_partial_hold_reports_loss,
            multi_semaphore_reuse_with_refresh: 1 => multi_semaphore::reuse_with_refresh,
            multi_semaphore_reuse_without_refresh: 1 => multi_semaphore::reuse_without_refresh,
            multi_semaphore_compatible_with_semaphore: 1 => multi_semaphore::compatible_with_semaphore,
            multi_semaphore_node_restart: 1 => multi_semaphore::node_restart,
            multi_semaphore_attempt_limit: 1 => multi_semaphore::attempt_limit,
            multi_semaphore_ttl_is_the_lock_timeout: 1 => multi_semaphore::ttl_is_the_lock_timeout,
            multi_semaphore_scores_are_the_server_clock: 1 => multi_semaphore::scores_are_the_server_clock,
            multi_semaphore_shared_instance_respects_limit: 1 => multi_semaphore::shared_instance_respects_limit,
            multi_semaphore_holds_per_instance: 1 => multi_semaphore::holds_per_instance,
            multi_semaphore_drop_releases: 1 => multi_semaphore::drop_releases,
            multi_semaphore_noscript_falls_back_to_eval: 1 => multi_semaphore::noscript_falls_back_to_eval,
            multi_semaphore_survives_a_short_pause: 1 => multi_semaphore::survives_a_short_pause,
        }
    };
}

pub(crate) use multi_semaphore_scenarios;
