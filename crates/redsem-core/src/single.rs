//! The single-node protocol: one backend, one vote.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::backend::RedisBackend;
use crate::commands::Commands;
use crate::error::{BackendError, LockError, LockKind, LostReason};
use crate::protocol::{validity, Leftover, Protocol, Refreshed, Retry};
use crate::time::{bounded_call, sleep_until};

/// `C`'s commands on one backend.
#[derive(Debug)]
pub(crate) struct SingleNode<C, B> {
    pub(crate) commands: C,
    pub(crate) backend: B,
}

impl<C: Commands, B> SingleNode<C, B> {
    fn error(&self, operation: &'static str, source: BackendError) -> LockError {
        LockError::Backend {
            kind: self.commands.kind(),
            key: self.commands.key().to_owned(),
            operation,
            source,
        }
    }
}

#[async_trait]
impl<C: Commands, B: RedisBackend + 'static> Protocol for SingleNode<C, B> {
    fn kind(&self) -> LockKind {
        self.commands.kind()
    }

    fn key(&self) -> &str {
        self.commands.key()
    }

    async fn acquire(
        &self,
        id: &str,
        ttl_ms: u64,
        started: Instant,
        bound: Duration,
    ) -> (Result<Option<Instant>, LockError>, Leftover) {
        let call = self.commands.acquire(&self.backend, id, ttl_ms);
        let result = match bounded_call(bound, call).await {
            // Acquired, but so late that no validity is left: it may be
            // gone already, so the caller treats it as failed and cleans up.
            Ok(true) => validity(started, ttl_ms)
                .map(Some)
                .ok_or_else(|| self.error("acquire", too_slow(started))),
            Ok(false) => Ok(None),
            Err(e) => Err(self.error("acquire", e)),
        };
        (result, None)
    }

    async fn refresh(
        &self,
        id: &str,
        ttl_ms: u64,
        started: Instant,
        bound: Duration,
    ) -> (Result<Refreshed, LockError>, Leftover) {
        let call = self.commands.refresh(&self.backend, id, ttl_ms);
        let result = match bounded_call(bound, call).await {
            Ok(true) => match validity(started, ttl_ms) {
                Some(valid_until) => Ok(Refreshed::Extended { valid_until }),
                None => Err(self.error("refresh", too_slow(started))),
            },
            Ok(false) => Ok(Refreshed::Lost(LostReason::Gone)),
            Err(e) => Err(self.error("refresh", e)),
        };
        (result, None)
    }

    async fn foreign_data(&self, bound: Duration) -> Option<String> {
        let check = self.commands.foreign_data(&self.backend);
        let found = crate::time::within(bound, check).await.ok()??;
        Some(format!("the key holds a {found}, not a lock"))
    }

    async fn release(
        &self,
        id: &str,
        bound: Duration,
        retry: Retry,
    ) -> (Result<bool, LockError>, Leftover) {
        let mut failures = 0;
        loop {
            let call = self.commands.release(&self.backend, id);
            match bounded_call(retry.bound(bound), call).await {
                // After a failed call that may have run, "not there" most
                // likely means that call removed it: not a loss.
                Ok(released) => return (Ok(released || failures > 0), None),
                Err(e) => {
                    failures += 1;
                    match retry.next_try(failures, bound) {
                        Some(at) if e.is_retryable() => sleep_until(at).await,
                        _ => return (Err(self.error("release", e)), None),
                    }
                }
            }
        }
    }
}

/// The error for a call answered after its hold's validity ran out.
pub(crate) fn too_slow(started: Instant) -> BackendError {
    BackendError::new(
        crate::BackendErrorKind::Timeout,
        format!(
            "the answer took {:?}, longer than the lock timeout less the clock-drift allowance",
            started.elapsed()
        ),
    )
}
