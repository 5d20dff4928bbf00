//! The seam between the generic lock engine (acquire loop, refresh, release,
//! guards) and each lock kind's Redis commands.

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::clock::Clock;
use crate::driver::Job;
use crate::error::{LockError, LockKind, LostReason};

/// Outcome of one refresh.
#[derive(Debug)]
pub(crate) enum Refreshed {
    /// The hold is confirmed until `valid_until` (and on `replicas`, when
    /// the lock asks for synced grants).
    Extended {
        valid_until: Instant,
        replicas: Option<crate::ReplicaAcks>,
    },
    /// Redis answered that the hold is gone (for Redlock: so many nodes
    /// answered "not held" that no quorum can hold it).
    Lost(LostReason),
}

/// A successful acquire attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Granted {
    /// When the hold runs out unless refreshed, by our clock.
    pub(crate) valid_until: Instant,
    /// The fencing token: greater than every token issued before for the
    /// key.
    pub(crate) token: u64,
    /// How many replicas confirmed it, when the lock asks for synced grants.
    pub(crate) replicas: Option<crate::ReplicaAcks>,
}

/// Bounded work an operation leaves behind when it returns early: calls
/// still in flight on slow Redlock nodes, the undo of a failed attempt on
/// them, retries of a release on nodes that failed. The engine spawns it, or
/// awaits it before reusing a fixed identifier.
pub(crate) type Leftover = Option<Job>;

/// What a lock kind does in Redis. Implementations bound their own calls
/// by `bound`: one call for a single node; each node separately for Redlock
/// (so a hung node only costs its vote).
#[async_trait]
pub(crate) trait Protocol: Send + Sync + fmt::Debug + 'static {
    /// The lock kind, for messages.
    fn kind(&self) -> LockKind;

    /// The Redis key with its prefix.
    fn key(&self) -> &str;

    /// The clock this lock's timers follow (its backend's, or for Redlock
    /// the first node's).
    fn clock(&self) -> &Clock;

    /// Release notifications for waiters on this lock's key, if the
    /// protocol's backend offers them (Redlock: its first node's).
    fn notifications(&self) -> Option<&crate::Notifications> {
        None
    }

    /// One acquire attempt started at `started`: `Some` when acquired,
    /// `None` when busy. An `Err` means the attempt may have taken the lock
    /// in part: the caller cleans up with `release`.
    async fn acquire(
        &self,
        id: &str,
        ttl_ms: u64,
        started: Instant,
        bound: Duration,
    ) -> (Result<Option<Granted>, LockError>, Leftover);

    /// A new fencing token for `id`'s hold, which was made elsewhere (a
    /// takeover): `None` when the hold is gone.
    async fn issue_token(
        &self,
        id: &str,
        bound: Duration,
    ) -> (Result<Option<u64>, LockError>, Leftover);

    /// Extends a hold. `Err` means the outcome is unknown (the hold may still
    /// be there): it is never a "no". A node that answers "not held" after
    /// the call returned is given the hold back only while `still_held()`,
    /// checked right before sending, so no re-fill follows a release.
    async fn refresh(
        &self,
        id: &str,
        ttl_ms: u64,
        started: Instant,
        bound: Duration,
        still_held: StillHeld,
    ) -> (Result<Refreshed, LockError>, Leftover);

    /// Why a lock that stayed busy may never be free: a node whose key holds
    /// foreign data (for messages; `None` when nothing is wrong).
    async fn foreign_data(&self, bound: Duration) -> Option<String>;

    /// Who holds the key, per node (read-only, one call per node).
    async fn inspect(
        &self,
        lock_timeout_ms: u64,
        bound: Duration,
    ) -> Vec<Result<crate::inspect::NodeInspection, crate::BackendError>>;

    /// Removes a hold, retrying calls that fail as `retry` allows:
    /// `Ok(true)` when it was there, `Ok(false)` when it was gone, `Err`
    /// when no answer came in time.
    async fn release(
        &self,
        id: &str,
        bound: Duration,
        retry: Retry,
    ) -> (Result<bool, LockError>, Leftover);
}

/// Whether a hold is still held (not released, not lost).
pub(crate) type StillHeld = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// How long, and how often, a failing release is retried.
#[derive(Debug, Clone)]
pub(crate) struct Retry {
    /// No try starts after this (the hold expires by itself then).
    pub(crate) until: Instant,
    /// Tries in all, the first included.
    pub(crate) tries: u32,
    /// The clock `until` is on.
    pub(crate) clock: Clock,
}

impl Retry {
    /// Until the hold would expire by itself, as often as the backoff
    /// allows: a guard's release.
    pub(crate) fn until(clock: &Clock, until: Instant) -> Self {
        Retry {
            until,
            tries: u32::MAX,
            clock: clock.clone(),
        }
    }

    /// A few tries: the clean-up of an attempt that may not even have
    /// reached Redis, which must not hammer a server that is down (what
    /// it may have taken expires by itself).
    pub(crate) fn few(clock: &Clock, until: Instant) -> Self {
        Retry {
            until,
            tries: 3,
            clock: clock.clone(),
        }
    }

    /// When to try again after the `failures`-th failed try (from 1), or
    /// `None` when the tries or the time are used up. The backoff starts at
    /// 10 ms (or `bound`, if shorter).
    pub(crate) fn next_try(&self, failures: u32, bound: Duration) -> Option<Instant> {
        if failures >= self.tries {
            return None;
        }
        let base = bound.min(Duration::from_millis(10));
        let wait = crate::backoff::after_failure(base, failures, crate::backoff::FAILURE_CAP);
        self.clock
            .now()
            .checked_add(wait)
            .filter(|at| *at < self.until)
    }

    /// `bound`, cut to the time left (at least 1 ms).
    pub(crate) fn bound(&self, bound: Duration) -> Duration {
        bound
            .min(self.until.saturating_duration_since(self.clock.now()))
            .max(Duration::from_millis(1))
    }
}

/// When a hold confirmed by a call sent at `started` with a TTL of `ttl_ms`
/// runs out by our clock, allowing for clock drift between client and
/// server (`ttl / 100 + 2 ms`, as Redlock does), or `None` if it already
/// has.
pub(crate) fn validity(clock: &Clock, started: Instant, ttl_ms: u64) -> Option<Instant> {
    let usable = Duration::from_millis(ttl_ms).checked_sub(drift(ttl_ms))?;
    let until = started
        .checked_add(usable)
        .unwrap_or_else(crate::time::far_future);
    (clock.now() < until).then_some(until)
}

/// The clock-drift allowance subtracted from every validity.
pub(crate) fn drift(ttl_ms: u64) -> Duration {
    Duration::from_millis(ttl_ms / 100 + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_one_percent_plus_two_ms() {
        assert_eq!(drift(10_000), Duration::from_millis(102));
        assert_eq!(drift(300), Duration::from_millis(5));
    }

    #[test]
    fn validity_allows_for_drift_and_elapsed_time() {
        let clock = Clock::system();
        let now = clock.now();
        let until = validity(&clock, now, 10_000).unwrap_or(now);
        assert_eq!(until - now, Duration::from_millis(9_898));
        assert_eq!(validity(&clock, now, 2), None);
    }
}
