//! What redsem reports to `tracing` (feature `tracing`) and `metrics`
//! (feature `metrics`): one function per event, each compiled to nothing
//! without the features.
//!
//! Metrics, each labelled with `kind`:
//! `redsem_acquired_total`, `redsem_acquire_wait_seconds` (histogram),
//! `redsem_acquire_attempts` (histogram), `redsem_acquire_gave_up_total`,
//! `redsem_refresh_failed_total`, `redsem_lost_total` (also labelled
//! `reason`), `redsem_background_release_failed_total`,
//! `redsem_held` (gauge: holds taken minus holds ended), `redsem_stalls_total`.
//!
//! | event | level | fields |
//! |---|---|---|
//! | acquired | DEBUG | kind, key, attempts, waited_ms |
//! | acquire gave up | INFO | kind, key, attempts, failed_attempts, error |
//! | refresh failed | WARN | kind, key, failures_in_a_row, error |
//! | refresh recovered | INFO | kind, key, after_failures |
//! | lock lost | WARN | kind, key, reason |
//! | background release failed | WARN | kind, key, error |
//! | background thread stalled | ERROR | blocked_ms |

#![cfg_attr(not(feature = "tracing"), allow(unused_variables))]

use std::time::Duration;

use crate::error::{LockError, LockKind, LostReason};

#[cfg(feature = "tracing")]
const TARGET: &str = "redsem";

pub(crate) fn acquired(kind: LockKind, key: &str, attempts: u32, waited: Duration) {
    #[cfg(feature = "metrics")]
    {
        let kind = kind.as_str();
        metrics::counter!("redsem_acquired_total", "kind" => kind).increment(1);
        metrics::histogram!("redsem_acquire_wait_seconds", "kind" => kind)
            .record(waited.as_secs_f64());
        metrics::histogram!("redsem_acquire_attempts", "kind" => kind).record(f64::from(attempts));
    }
    #[cfg(feature = "tracing")]
    tracing::debug!(target: TARGET, %kind, key, attempts, waited_ms = waited.as_millis() as u64, "acquired");
}

pub(crate) fn acquire_gave_up(kind: LockKind, key: &str, err: &LockError) {
    #[cfg(feature = "metrics")]
    metrics::counter!("redsem_acquire_gave_up_total", "kind" => kind.as_str()).increment(1);
    #[cfg(feature = "tracing")]
    if let LockError::Timeout {
        attempts,
        failed_attempts,
        ..
    } = err
    {
        tracing::info!(target: TARGET, %kind, key, attempts, failed_attempts, error = %err, "acquire gave up");
    } else {
        tracing::info!(target: TARGET, %kind, key, error = %err, "acquire gave up");
    }
}

pub(crate) fn refresh_failed(kind: LockKind, key: &str, failures_in_a_row: u32, err: &LockError) {
    #[cfg(feature = "metrics")]
    metrics::counter!("redsem_refresh_failed_total", "kind" => kind.as_str()).increment(1);
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, %kind, key, failures_in_a_row, error = %err, "refresh failed, retrying");
}

pub(crate) fn refresh_recovered(kind: LockKind, key: &str, after_failures: u32) {
    #[cfg(feature = "tracing")]
    tracing::info!(target: TARGET, %kind, key, after_failures, "refresh recovered");
}

pub(crate) fn lost(kind: LockKind, key: &str, reason: &LostReason) {
    #[cfg(feature = "metrics")]
    {
        let reason = match reason {
            LostReason::Gone => "gone",
            LostReason::Unconfirmed { .. } => "unconfirmed",
            LostReason::Expired => "expired",
            LostReason::QuorumLost { .. } => "quorum_lost",
        };
        metrics::counter!("redsem_lost_total", "kind" => kind.as_str(), "reason" => reason)
            .increment(1);
    }
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, %kind, key, %reason, "lock lost");
}

/// A hold began (acquired or taken over).
pub(crate) fn hold_started(kind: LockKind) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("redsem_held", "kind" => kind.as_str()).increment(1.0);
}

/// A hold ended (released, detached, or dropped after a loss).
pub(crate) fn hold_ended(kind: LockKind) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("redsem_held", "kind" => kind.as_str()).decrement(1.0);
}

pub(crate) fn background_release_failed(kind: LockKind, key: &str, err: &LockError) {
    #[cfg(feature = "metrics")]
    metrics::counter!("redsem_background_release_failed_total", "kind" => kind.as_str())
        .increment(1);
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, %kind, key, error = %err, "background release failed; the hold expires after its lock timeout");
}

pub(crate) fn stalled(blocked: Duration) {
    #[cfg(feature = "metrics")]
    metrics::counter!("redsem_stalls_total").increment(1);
    #[cfg(feature = "tracing")]
    tracing::error!(target: TARGET, blocked_ms = blocked.as_millis() as u64, "redsem's background thread is blocked; refreshes of every lock are delayed");
}
