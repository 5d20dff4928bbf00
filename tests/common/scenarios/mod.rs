//! The conformance scenarios: plain `async fn(Env)`s, each run against the
//! mock, redis-rs and fred by the test binaries through the list macros
//! below (one list, no per-backend copies).
//!
//! `mutex` (listed here), `semaphore`, `multi_semaphore` and `redlock` each
//! hold one lock family and its list; `support` holds the helpers they
//! share.
//!
//! A scenario lets time pass and measures it only through `env.time`
//! (`sleep`, `now`, `since`, `wait_until`; see `common::time`): real time
//! on real servers, the nodes' virtual clock on the mock.

pub mod multi_semaphore;
pub mod mutex;
pub mod redlock;
pub mod semaphore;
pub mod support;

pub(crate) use multi_semaphore::multi_semaphore_scenarios;
pub(crate) use redlock::redlock_scenarios;
pub(crate) use semaphore::semaphore_scenarios;

/// Calls `$m! { name: nodes => path, ... }` with every scenario that needs
/// only single-node behaviour and node faults (stop/start).
macro_rules! single_node_scenarios {
    ($m:ident) => {
        $m! {
            mutex_acquire_release: 1 => mutex::acquire_release,
            mutex_identifiers: 1 => mutex::identifiers,
            mutex_empty_key_is_rejected: 1 => mutex::empty_key_is_rejected,
            mutex_acquire_times_out_when_busy: 1 => mutex::acquire_times_out_when_busy,
            mutex_dropping_a_waiting_acquire_cancels_it: 1 => mutex::dropping_a_waiting_acquire_cancels_it,
            mutex_try_acquire: 1 => mutex::try_acquire,
            mutex_refresh_keeps_the_lock: 1 => mutex::refresh_keeps_the_lock,
            mutex_stop_refresh_lets_it_expire: 1 => mutex::stop_refresh_lets_it_expire,
            mutex_acquired_externally: 1 => mutex::acquired_externally,
            mutex_acquired_externally_but_gone: 1 => mutex::acquired_externally_but_gone,
            mutex_lost_when_taken: 1 => mutex::lost_when_taken,
            mutex_lost_when_deleted: 1 => mutex::lost_when_deleted,
            mutex_reuse: 1 => mutex::reuse,
            mutex_node_restart: 1 => mutex::node_restart,
            mutex_attempt_limit: 1 => mutex::attempt_limit,
            mutex_ttl_is_the_lock_timeout: 1 => mutex::ttl_is_the_lock_timeout,
            mutex_keys_are_independent: 1 => mutex::keys_are_independent,
            mutex_release_after_takeover: 1 => mutex::release_after_takeover,
            mutex_drop_releases: 1 => mutex::drop_releases,
            mutex_with_lock_runs_and_releases: 1 => mutex::with_lock_runs_and_releases,
            mutex_with_lock_stops_work_on_loss: 1 => mutex::with_lock_stops_work_on_loss,
            mutex_fixed_identifier_holds_once: 1 => mutex::fixed_identifier_holds_once,
            mutex_shared_instance_serialises_tasks: 1 => mutex::shared_instance_serialises_tasks,
            mutex_noscript_falls_back_to_eval: 1 => mutex::noscript_falls_back_to_eval,
            mutex_paused_node: 1 => mutex::paused_node,
        }
    };
}

pub(crate) use single_node_scenarios;
