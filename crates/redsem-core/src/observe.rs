//! What redsem reports to `tracing` (feature `tracing`): one function per
//! event, each compiled to nothing without the feature.
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
    #[cfg(feature = "tracing")]
    tracing::debug!(target: TARGET, %kind, key, attempts, waited_ms = waited.as_millis() as u64, "acquired");
}

pub(crate) fn acquire_gave_up(kind: LockKind, key: &str, err: &LockError) {
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
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, %kind, key, failures_in_a_row, error = %err, "refresh failed, retrying");
}

pub(crate) fn refresh_recovered(kind: LockKind, key: &str, after_failures: u32) {
    #[cfg(feature = "tracing")]
    tracing::info!(target: TARGET, %kind, key, after_failures, "refresh recovered");
}

pub(crate) fn lost(kind: LockKind, key: &str, reason: &LostReason) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, %kind, key, %reason, "lock lost");
}

pub(crate) fn background_release_failed(kind: LockKind, key: &str, err: &LockError) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: TARGET, %kind, key, error = %err, "background release failed; the hold expires after its lock timeout");
}

pub(crate) fn stalled(blocked: Duration) {
    #[cfg(feature = "tracing")]
    tracing::error!(target: TARGET, blocked_ms = blocked.as_millis() as u64, "redsem's background thread is blocked; refreshes of every lock are delayed");
}
