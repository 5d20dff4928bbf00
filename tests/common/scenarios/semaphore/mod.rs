//! Semaphore behaviours (redis-semaphore SEM-*, WIRE-04..06/14, LOCK-*,
//! GAP-*) plus redsem's own guarantees, by concern:
//!
//! - `basics`: holding, identifiers, arguments, waiting, attempts, sharing;
//! - `refresh`: refresh on and off, reuse, scripts after `SCRIPT FLUSH`;
//! - `scores`: the ZSET's scores and TTL (fairness, the server's clock);
//! - `external`: taking over a hold made elsewhere;
//! - `loss`: holds that vanish or are replaced;
//! - `faults`: node restarts and pauses.
//!
//! The multi-semaphore scenarios share most of these: the `*_with`
//! functions (re-exported here) take the limit and, for a MultiSemaphore,
//! the permits; [`AnySem`] is the lock of either kind.

pub mod basics;
pub mod external;
pub mod faults;
pub mod loss;
pub mod refresh;
pub mod scores;

use std::time::{Duration, Instant};

use redsem_core::{LockError, LockGuard, LockOptions, LostReason, MultiSemaphore, Semaphore};

pub(crate) use basics::{
    attempt_limit_with, busy_with, cancel_waiting_with, shared_instance_respects_limit_with,
};
pub(crate) use external::acquired_externally_with;
pub(crate) use faults::{node_restart_with, survives_a_short_pause_with};
pub(crate) use loss::{assert_lost_once, lost_after, refill};
pub(crate) use refresh::{
    noscript_falls_back_to_eval_with, reuse_with_refresh_with, reuse_without_refresh_with,
};
pub(crate) use scores::{
    fairness_batches_with, scores_are_the_server_clock_with, ttl_is_the_lock_timeout_with,
};

use super::support::{assert_lost, Backend};
use crate::common::node::Node;
use crate::common::timing::{ms, t};
use crate::common::Env;

/// The stored key of the user key `key`.
pub(crate) const KEY: &str = "semaphore:key";

/// A generous bound for conditions that should hold within a lock timeout
/// or two.
pub(crate) const PATIENCE: Duration = Duration::from_secs(3);

/// A Semaphore of `limit` on `key` with the preset.
fn sem(env: &Env, limit: u32) -> Semaphore<Backend> {
    Semaphore::with_options(env.backend(), "key", limit, t()).unwrap()
}

/// The score of `member` in [`KEY`], if present.
pub(crate) fn score_of(node: &dyn Node, member: &str) -> Option<i64> {
    node.zrange_with_scores(KEY)
        .into_iter()
        .find(|(m, _)| m == member)
        .map(|(_, s)| s)
}

/// A Semaphore (`permits` 0) or a MultiSemaphore on `key`, for scenarios
/// both kinds share.
#[derive(Clone)]
pub(crate) enum AnySem {
    Sem(Semaphore<Backend>),
    Multi(MultiSemaphore<Backend>),
}

impl AnySem {
    pub(crate) fn new(env: &Env, limit: u32, permits: u32, options: LockOptions) -> Self {
        if permits == 0 {
            AnySem::Sem(Semaphore::with_options(env.backend(), "key", limit, options).unwrap())
        } else {
            AnySem::Multi(
                MultiSemaphore::with_options(env.backend(), "key", limit, permits, options)
                    .unwrap(),
            )
        }
    }

    pub(crate) async fn acquire(&self) -> Result<LockGuard, LockError> {
        match self {
            AnySem::Sem(s) => s.acquire().await,
            AnySem::Multi(s) => s.acquire().await,
        }
    }

    pub(crate) async fn try_acquire(&self) -> Result<Option<LockGuard>, LockError> {
        match self {
            AnySem::Sem(s) => s.try_acquire().await,
            AnySem::Multi(s) => s.try_acquire().await,
        }
    }

    /// The ZSET members a hold under `id` has.
    pub(crate) fn members(&self, id: &str) -> Vec<String> {
        match self {
            AnySem::Sem(_) => vec![id.to_owned()],
            AnySem::Multi(s) => (0..s.permits()).map(|i| format!("{id}_{i}")).collect(),
        }
    }

    /// The kind's name in messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            AnySem::Sem(_) => "semaphore",
            AnySem::Multi(_) => "multi-semaphore",
        }
    }

    /// The start of this kind's timeout message.
    pub(crate) fn timeout_message(&self) -> String {
        format!("Acquire {} semaphore:key timeout", self.kind())
    }
}

/// Releases `first` and checks that only `rest` is left, then releases
/// `second` and checks that the emptied ZSET is deleted.
pub(crate) async fn release_in_turn(
    node: &dyn Node,
    first: LockGuard,
    second: LockGuard,
    rest: &[String],
) {
    first.release().await.unwrap();
    assert_eq!(node.zrange(KEY), rest);
    second.release().await.unwrap();
    assert!(node.zrange(KEY).is_empty());
    assert_eq!(node.pttl(KEY), -2, "an empty ZSET is deleted");
}

/// SEM-06, MSEM-06, GAP-20: `stopped` stops refreshing; it stays held until
/// its lock timeout, then the other holders' refresh prunes it (not early),
/// leaving `rest`, and its guard reports `Expired`.
pub(crate) async fn pruned_after_stop_refresh(env: &Env, stopped: &LockGuard, rest: &[String]) {
    let node = env.node();
    stopped.stop_refresh();
    let start = env.time.now();
    assert!(stopped.is_acquired(), "still held until its lock timeout");
    env.time
        .wait_until("s1 pruned by s2's refresh", PATIENCE, || {
            node.zrange(KEY) == rest
        })
        .await;
    assert!(
        env.time.since(start) >= ms(300),
        "pruned {:?} after stop_refresh",
        env.time.since(start)
    );
    assert_lost!(stopped.lost().await, LostReason::Expired);
}

/// The last holder stops refreshing: the key expires with its TTL, and the
/// guard reports `Expired`.
pub(crate) async fn expires_with_the_key(env: &Env, last: &LockGuard) {
    let node = env.node();
    last.stop_refresh();
    env.time
        .wait_until("the key to expire", PATIENCE, || node.pttl(KEY) == -2)
        .await;
    assert_lost!(last.lost().await, LostReason::Expired);
}

/// Calls `$m! { name: nodes => path, ... }` with the semaphore scenarios.
macro_rules! semaphore_scenarios {
    ($m:ident) => {
        $m! {
            semaphore_acquire_release: 1 => semaphore::basics::acquire_release,
            semaphore_identifiers: 1 => semaphore::basics::identifiers,
            semaphore_invalid_arguments: 1 => semaphore::basics::invalid_arguments,
            semaphore_acquire_times_out_when_busy: 1 => semaphore::basics::acquire_times_out_when_busy,
            semaphore_dropping_a_waiting_acquire_cancels_it: 1 => semaphore::basics::dropping_a_waiting_acquire_cancels_it,
            semaphore_try_acquire: 1 => semaphore::basics::try_acquire,
            semaphore_refresh_keeps_the_holders: 1 => semaphore::refresh::refresh_keeps_the_holders,
            semaphore_stop_refresh_lets_it_expire: 1 => semaphore::refresh::stop_refresh_lets_it_expire,
            semaphore_fairness_batches: 1 => semaphore::scores::fairness_batches,
            semaphore_acquired_externally: 1 => semaphore::external::acquired_externally,
            semaphore_acquired_externally_but_gone: 1 => semaphore::external::acquired_externally_but_gone,
            semaphore_lost_when_refilled: 1 => semaphore::loss::lost_when_refilled,
            semaphore_lost_when_deleted: 1 => semaphore::loss::lost_when_deleted,
            semaphore_failed_refresh_still_prunes: 1 => semaphore::loss::failed_refresh_still_prunes,
            semaphore_reuse_with_refresh: 1 => semaphore::refresh::reuse_with_refresh,
            semaphore_reuse_without_refresh: 1 => semaphore::refresh::reuse_without_refresh,
            semaphore_node_restart: 1 => semaphore::faults::node_restart,
            semaphore_attempt_limit: 1 => semaphore::basics::attempt_limit,
            semaphore_ttl_is_the_lock_timeout: 1 => semaphore::scores::ttl_is_the_lock_timeout,
            semaphore_scores_are_the_server_clock: 1 => semaphore::scores::scores_are_the_server_clock,
            semaphore_keys_are_independent: 1 => semaphore::basics::keys_are_independent,
            semaphore_release_after_loss: 1 => semaphore::loss::release_after_loss,
            semaphore_drop_releases: 1 => semaphore::basics::drop_releases,
            semaphore_with_lock_runs_and_releases: 1 => semaphore::basics::with_lock_runs_and_releases,
            semaphore_fixed_identifier_holds_once: 1 => semaphore::basics::fixed_identifier_holds_once,
            semaphore_shared_instance_respects_limit: 1 => semaphore::basics::shared_instance_respects_limit,
            semaphore_noscript_falls_back_to_eval: 1 => semaphore::refresh::noscript_falls_back_to_eval,
            semaphore_survives_a_short_pause: 1 => semaphore::faults::survives_a_short_pause,
        }
    };
}

pub(crate) use semaphore_scenarios;
