//! Redlock behaviours (redis-semaphore RLM-*, RLS-*, RLMS-*, UTIL-01 and
//! GAP-11/12/13/19) on 3 and 5 independent nodes, plus the fault guarantees
//! of the Redlock issue: quorum with a node down, lost quorum, a hung node.
//!
//! `mutex` holds the RedlockMutex scenarios, `semaphore` the
//! RedlockSemaphore and RedlockMultiSemaphore ones, `faults` the node
//! outages, pauses and the 5-node setup, for every kind. This module holds
//! what they share: [`Kind`] and [`AnyLock`] (a lock of any Redlock kind),
//! loss reports, quorum errors, and the list.

pub mod faults;
pub mod mutex;
pub mod semaphore;

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use redsem_core::{
    LockError, LockGuard, LockOptions, LockOptionsBuilder, LostReason, RedlockMultiSemaphore,
    RedlockMutex, RedlockSemaphore,
};

pub use super::support::Backend;
use super::support::{assert_lost, assert_message};
use crate::common::node::Node;
use crate::common::timing::{ms, t_builder};
use crate::common::Env;

pub const MUTEX_KEY: &str = "mutex:key";
pub const SEM_KEY: &str = "semaphore:key";

pub const SEM1: Kind = Kind::Semaphore { limit: 1 };
pub const SEM2: Kind = Kind::Semaphore { limit: 2 };
pub const SEM3: Kind = Kind::Semaphore { limit: 3 };
pub const MULTI_3_1: Kind = Kind::Multi {
    limit: 3,
    permits: 1,
};
pub const MULTI_3_2: Kind = Kind::Multi {
    limit: 3,
    permits: 2,
};
pub const MULTI_3_3: Kind = Kind::Multi {
    limit: 3,
    permits: 3,
};
pub const MULTI_4_2: Kind = Kind::Multi {
    limit: 4,
    permits: 2,
};

/// A Redlock lock kind with its limit and permits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mutex,
    Semaphore { limit: u32 },
    Multi { limit: u32, permits: u32 },
}

/// Any Redlock lock, so fault scenarios are written once for every kind.
#[derive(Debug, Clone)]
pub enum AnyLock {
    Mutex(RedlockMutex<Backend>),
    Semaphore(RedlockSemaphore<Backend>),
    Multi(RedlockMultiSemaphore<Backend>),
}

impl AnyLock {
    pub async fn acquire(&self) -> Result<LockGuard, LockError> {
        match self {
            AnyLock::Mutex(l) => l.acquire().await,
            AnyLock::Semaphore(l) => l.acquire().await,
            AnyLock::Multi(l) => l.acquire().await,
        }
    }

    pub async fn try_acquire(&self) -> Result<Option<LockGuard>, LockError> {
        match self {
            AnyLock::Mutex(l) => l.try_acquire().await,
            AnyLock::Semaphore(l) => l.try_acquire().await,
            AnyLock::Multi(l) => l.try_acquire().await,
        }
    }
}

impl Kind {
    /// A lock of this kind on `key` over `nodes`.
    pub fn lock_on(self, nodes: Vec<Backend>, key: &str, options: LockOptions) -> AnyLock {
        match self {
            Kind::Mutex => AnyLock::Mutex(RedlockMutex::with_options(nodes, key, options).unwrap()),
            Kind::Semaphore { limit } => AnyLock::Semaphore(
                RedlockSemaphore::with_options(nodes, key, limit, options).unwrap(),
            ),
            Kind::Multi { limit, permits } => AnyLock::Multi(
                RedlockMultiSemaphore::with_options(nodes, key, limit, permits, options).unwrap(),
            ),
        }
    }

    /// A lock of this kind on `key` (stored as `mutex:key` / `semaphore:key`).
    pub fn lock(self, nodes: Vec<Backend>, options: LockOptions) -> AnyLock {
        self.lock_on(nodes, "key", options)
    }

    /// The name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mutex => "redlock-mutex",
            Kind::Semaphore { .. } => "redlock-semaphore",
            Kind::Multi { .. } => "redlock-multi-semaphore",
        }
    }

    /// The stored key.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Mutex => MUTEX_KEY,
            _ => SEM_KEY,
        }
    }

    /// What a hold under `id` stores: the mutex value, or the ZSET members.
    pub fn members(self, id: &str) -> Vec<String> {
        match self {
            Kind::Mutex | Kind::Semaphore { .. } => vec![id.to_owned()],
            Kind::Multi { permits, .. } => (0..permits).map(|i| format!("{id}_{i}")).collect(),
        }
    }

    /// Whether `node` has the whole hold of `id`.
    pub fn holds(self, node: &dyn Node, id: &str) -> bool {
        match self {
            Kind::Mutex => node.get(MUTEX_KEY).as_deref() == Some(id),
            _ => {
                let present = node.zrange(SEM_KEY);
                self.members(id).iter().all(|m| present.contains(m))
            }
        }
    }

    /// Whether `node` has none of the hold of `id`.
    pub fn lacks(self, node: &dyn Node, id: &str) -> bool {
        match self {
            Kind::Mutex => node.get(MUTEX_KEY).as_deref() != Some(id),
            _ => {
                let present = node.zrange(SEM_KEY);
                self.members(id).iter().all(|m| !present.contains(m))
            }
        }
    }
}

/// `ZRANGE semaphore:key` of every node.
pub fn zranges(nodes: &[Arc<dyn Node>]) -> Vec<Vec<String>> {
    nodes.iter().map(|n| n.zrange(SEM_KEY)).collect()
}

/// `GET mutex:key` of every node.
pub fn gets(nodes: &[Arc<dyn Node>]) -> Vec<Option<String>> {
    nodes.iter().map(|n| n.get(MUTEX_KEY)).collect()
}

/// The fields of a [`LockError::QuorumNotReached`].
#[derive(Debug)]
pub struct QuorumFailure {
    pub operation: &'static str,
    pub succeeded: usize,
    pub total: usize,
    pub quorum: usize,
    /// The failed nodes (from 1) with their reasons, in node order.
    pub failures: Vec<(usize, String)>,
    pub message: String,
}

impl QuorumFailure {
    /// The operation and the counts: how many nodes succeeded, of how
    /// many, and the quorum.
    pub fn assert_counts(&self, operation: &str, succeeded: usize, total: usize, quorum: usize) {
        assert_eq!(
            (self.operation, self.succeeded, self.total, self.quorum),
            (operation, succeeded, total, quorum),
            "{}",
            self.message
        );
    }

    pub fn nodes(&self) -> Vec<usize> {
        self.failures.iter().map(|(n, _)| *n).collect()
    }

    pub fn reason(&self, node: usize) -> &str {
        self.failures
            .iter()
            .find(|(n, _)| *n == node)
            .map(|(_, r)| r.as_str())
            .unwrap_or_else(|| panic!("node {node} is not among the failures: {}", self.message))
    }
}

/// The quorum error inside `err` (itself, or the last failure of an acquire
/// timeout); fails the scenario for any other error.
pub fn quorum_failure(err: LockError) -> QuorumFailure {
    let err = match err {
        LockError::Timeout {
            last_error: Some(last),
            ..
        } => *last,
        other => other,
    };
    let message = err.to_string();
    match err {
        LockError::QuorumNotReached {
            operation,
            succeeded,
            total,
            quorum,
            failures,
            ..
        } => QuorumFailure {
            operation,
            succeeded,
            total,
            quorum,
            failures: failures.into_iter().map(|f| (f.node, f.reason)).collect(),
            message,
        },
        other => panic!("expected a quorum error, got {other:?} ({message})"),
    }
}

/// Records every loss reported to `on_lock_lost`.
#[derive(Debug, Clone, Default)]
pub struct Losses(Arc<StdMutex<Vec<String>>>);

impl Losses {
    /// `builder` with a callback that records into this.
    pub fn options(&self, builder: LockOptionsBuilder) -> LockOptions {
        let seen = self.0.clone();
        builder
            .on_lock_lost(move |err| {
                let tag = if err.is_lost() { "" } else { "NOT A LOSS: " };
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("{tag}{err}"));
            })
            .build()
            .unwrap()
    }

    /// The preset `T` with the callback.
    pub fn t(&self) -> LockOptions {
        self.options(t_builder())
    }

    pub fn messages(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn count(&self) -> usize {
        self.messages().len()
    }

    /// Nothing was reported.
    pub fn assert_none(&self) {
        assert_eq!(self.count(), 0, "{:?}", self.messages());
    }

    /// Every report is a loss of `kind`'s key.
    pub fn assert_all_lost(&self, kind: Kind) {
        let prefix = format!("Lost {} for key {}", kind.name(), kind.key());
        for m in self.messages() {
            assert!(m.starts_with(&prefix), "unexpected report: {m}");
        }
    }
}

/// Acquires `kind` on every node with loss reporting, runs `tamper`, and
/// checks the loss: reported once as `QuorumLost` (quorum 2) of `kind`'s
/// key, and by release too. `after_loss` runs as soon as the loss is seen.
pub async fn lost_when(
    env: &Env,
    kind: Kind,
    tamper: impl FnOnce(&Env),
    after_loss: impl FnOnce(&Env),
) {
    let losses = Losses::default();
    let g = kind
        .lock(env.backends(), losses.t())
        .acquire()
        .await
        .unwrap();
    tamper(env);
    env.time
        .wait_until("the loss is reported", Duration::from_secs(2), || {
            losses.count() > 0
        })
        .await;
    assert!(!g.is_acquired());
    after_loss(env);
    let err = g.lost().await;
    assert_message(
        &err,
        &format!("Lost {} for key {}", kind.name(), kind.key()),
    );
    assert_lost!(err, LostReason::QuorumLost { quorum: 2, .. });
    env.time.sleep(ms(300)).await;
    assert_eq!(
        losses.count(),
        1,
        "reported exactly once: {:?}",
        losses.messages()
    );
    losses.assert_all_lost(kind);
    let err = g.release().await.unwrap_err();
    assert!(err.is_lost(), "{err}");
}

/// Calls `$m! { name: nodes => path, ... }` with every Redlock scenario.
macro_rules! redlock_scenarios {
    ($m:ident) => {
        $m! {
            redlock_quorum_sizes: 3 => redlock::mutex::quorum_sizes,
            redlock_mutex_invalid_arguments: 3 => redlock::mutex::invalid_arguments,
            redlock_mutex_acquire_release: 3 => redlock::mutex::acquire_release,
            redlock_mutex_acquire_times_out_when_busy: 3 => redlock::mutex::acquire_times_out_when_busy,
            redlock_mutex_try_acquire: 3 => redlock::mutex::try_acquire,
            redlock_mutex_dropping_a_waiting_acquire_cancels_it: 3 => redlock::mutex::dropping_a_waiting_acquire_cancels_it,
            redlock_mutex_refresh_keeps_the_lock: 3 => redlock::mutex::refresh_keeps_the_lock,
            redlock_mutex_stop_refresh_lets_it_expire: 3 => redlock::mutex::stop_refresh_lets_it_expire,
            redlock_mutex_acquired_externally: 3 => redlock::mutex::acquired_externally,
            redlock_mutex_takeover_without_quorum_fails: 3 => redlock::mutex::takeover_without_quorum_fails,
            redlock_mutex_takeover_with_quorum_fills_the_rest: 3 => redlock::mutex::takeover_with_quorum_fills_the_rest,
            redlock_mutex_lost_when_taken: 3 => redlock::mutex::lost_when_taken,
            redlock_mutex_lost_when_deleted: 3 => redlock::mutex::lost_when_deleted,
            redlock_mutex_minority_tamper_is_tolerated: 3 => redlock::mutex::minority_tamper_is_tolerated,
            redlock_mutex_refresh_restores_a_missing_node: 3 => redlock::mutex::refresh_restores_a_missing_node,
            redlock_mutex_reuse: 3 => redlock::mutex::reuse,
            redlock_mutex_attempt_limit: 3 => redlock::mutex::attempt_limit,
            redlock_mutex_ttl_is_the_lock_timeout: 3 => redlock::mutex::ttl_is_the_lock_timeout,
            redlock_mutex_keys_are_independent: 3 => redlock::mutex::keys_are_independent,
            redlock_mutex_release_when_gone: 3 => redlock::mutex::release_when_gone,
            redlock_mutex_drop_releases: 3 => redlock::mutex::drop_releases,
            redlock_mutex_with_lock_runs_and_releases: 3 => redlock::mutex::with_lock_runs_and_releases,
            redlock_mutex_with_lock_stops_work_on_loss: 3 => redlock::mutex::with_lock_stops_work_on_loss,
            redlock_mutex_fixed_identifier_holds_once: 3 => redlock::mutex::fixed_identifier_holds_once,
            redlock_mutex_shared_instance_serialises_tasks: 3 => redlock::mutex::shared_instance_serialises_tasks,

            redlock_semaphore_invalid_arguments: 3 => redlock::semaphore::holds::invalid_arguments,
            redlock_semaphore_acquire_release: 3 => redlock::semaphore::holds::sem_acquire_release,
            redlock_semaphore_acquire_times_out_when_busy: 3 => redlock::semaphore::holds::sem_acquire_times_out_when_busy,
            redlock_semaphore_dropping_a_waiting_acquire_cancels_it: 3 => redlock::semaphore::holds::sem_dropping_a_waiting_acquire_cancels_it,
            redlock_semaphore_refresh_keeps_holds: 3 => redlock::semaphore::refresh::sem_refresh_keeps_holds,
            redlock_semaphore_stop_refresh_lets_it_expire: 3 => redlock::semaphore::refresh::sem_stop_refresh_lets_it_expire,
            redlock_semaphore_batches_respect_the_limit: 3 => redlock::semaphore::limits::sem_batches_respect_the_limit,
            redlock_semaphore_acquired_externally: 3 => redlock::semaphore::holds::sem_acquired_externally,
            redlock_semaphore_lost_when_replaced: 3 => redlock::semaphore::refresh::sem_lost_when_replaced,
            redlock_semaphore_reuse_with_refresh: 3 => redlock::semaphore::refresh::sem_reuse_with_refresh,
            redlock_semaphore_reuse_without_refresh: 3 => redlock::semaphore::refresh::sem_reuse_without_refresh,
            redlock_semaphore_fill_respects_the_limit: 3 => redlock::semaphore::refresh::sem_fill_respects_the_limit,
            redlock_multi_acquire_release: 3 => redlock::semaphore::holds::multi_acquire_release,
            redlock_multi_acquire_times_out_when_busy: 3 => redlock::semaphore::holds::multi_acquire_times_out_when_busy,
            redlock_multi_dropping_a_waiting_acquire_cancels_it: 3 => redlock::semaphore::holds::multi_dropping_a_waiting_acquire_cancels_it,
            redlock_multi_refresh_keeps_holds: 3 => redlock::semaphore::refresh::multi_refresh_keeps_holds,
            redlock_multi_stop_refresh_lets_it_expire: 3 => redlock::semaphore::refresh::multi_stop_refresh_lets_it_expire,
            redlock_multi_batches_respect_the_limit: 3 => redlock::semaphore::limits::multi_batches_respect_the_limit,
            redlock_multi_acquired_externally: 3 => redlock::semaphore::holds::multi_acquired_externally,
            redlock_multi_lost_when_replaced: 3 => redlock::semaphore::refresh::multi_lost_when_replaced,
            redlock_multi_reuse_with_refresh: 3 => redlock::semaphore::refresh::multi_reuse_with_refresh,
            redlock_multi_reuse_without_refresh: 3 => redlock::semaphore::refresh::multi_reuse_without_refresh,
            redlock_multi_shares_slots_with_semaphore: 3 => redlock::semaphore::holds::multi_shares_slots_with_semaphore,
            redlock_multi_failed_quorum_leaves_no_permits: 3 => redlock::semaphore::limits::multi_failed_quorum_leaves_no_permits,

            redlock_mutex_node_down_from_the_start: 3 => redlock::faults::outages::mutex_node_down_from_the_start,
            redlock_mutex_each_node_outage_keeps_quorum: 3 => redlock::faults::outages::mutex_each_node_outage_keeps_quorum,
            redlock_semaphore_each_node_outage_keeps_quorum: 3 => redlock::faults::outages::sem_each_node_outage_keeps_quorum,
            redlock_multi_each_node_outage_keeps_quorum: 3 => redlock::faults::outages::multi_each_node_outage_keeps_quorum,
            redlock_mutex_two_nodes_down_lose_the_lock: 3 => redlock::faults::outages::mutex_two_nodes_down_lose_the_lock,
            redlock_semaphore_two_nodes_down_lose_the_lock: 3 => redlock::faults::outages::sem_two_nodes_down_lose_the_lock,
            redlock_multi_two_nodes_down_lose_the_lock: 3 => redlock::faults::outages::multi_two_nodes_down_lose_the_lock,
            redlock_mutex_paused_node: 3 => redlock::faults::paused::mutex_paused_node,
            redlock_semaphore_paused_node: 3 => redlock::faults::paused::sem_paused_node,
            redlock_multi_paused_node: 3 => redlock::faults::paused::multi_paused_node,
            redlock_mutex_paused_node_bounds_a_contender: 3 => redlock::faults::paused::mutex_paused_node_bounds_a_contender,
            redlock_mutex_cancel_with_a_hung_node: 3 => redlock::faults::paused::mutex_cancel_with_a_hung_node,
            redlock_mutex_hung_node_adds_no_delay: 3 => redlock::faults::paused::mutex_hung_node_adds_no_delay,
            redlock_mutex_five_nodes_two_down: 5 => redlock::faults::outages::mutex_five_nodes_two_down,
            redlock_semaphore_five_nodes_two_down: 5 => redlock::faults::outages::sem_five_nodes_two_down,
            redlock_validity_excludes_slow_quorums: 3 => redlock::faults::validity::validity_excludes_slow_quorums,
        }
    };
}

pub(crate) use redlock_scenarios;
