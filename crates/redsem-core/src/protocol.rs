//! The seam between the generic lock engine (acquire loop, refresh, release,
//! guards) and each lock kind's Redis commands.

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::{BackendError, LockError, LockKind, LostReason};

/// Outcome of one refresh call.
#[derive(Debug)]
pub(crate) enum Refreshed {
    /// The hold is confirmed until `valid_until`.
    Extended { valid_until: Instant },
    /// Redis answered that the hold is gone.
    Lost(LostReason),
}

/// What a lock kind does in Redis. Implementations bound their own calls
/// by `bound`: one call for a single node; each node separately, per phase,
/// for Redlock (so an operation takes at most a few bounds, and a hung node
/// only costs its vote).
#[async_trait]
pub(crate) trait Protocol: Send + Sync + fmt::Debug + 'static {
    /// The lock kind, for messages.
    fn kind(&self) -> LockKind;

    /// The Redis key with its prefix.
    fn key(&self) -> &str;

    /// One acquire attempt started at `started`: `Some(valid_until)` when
    /// acquired, `None` when busy.
    async fn acquire(
        &self,
        id: &str,
        ttl_ms: u64,
        started: Instant,
        bound: Duration,
    ) -> Result<Option<Instant>, LockError>;

    /// Extends a hold. `Err` means the outcome is unknown (the hold may still
    /// be there).
    async fn refresh(
        &self,
        id: &str,
        ttl_ms: u64,
        started: Instant,
        bound: Duration,
    ) -> Result<Refreshed, BackendError>;

    /// Removes a hold; `Ok(false)` when it was no longer there.
    async fn release(&self, id: &str, bound: Duration) -> Result<bool, LockError>;
}
