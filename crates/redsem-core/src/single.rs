//! The single-node protocol: one backend, one vote.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::backend::RedisBackend;
use crate::clock::Clock;
use crate::commands::{Commands, FenceMode};
use crate::error::{BackendError, LockError, LockKind, LostReason};
use crate::protocol::{validity, Granted, Leftover, Protocol, Refreshed, Retry, StillHeld};
use crate::time::{bounded_call, sleep_until};

/// `C`'s commands on one backend.
#[derive(Debug)]
pub(crate) struct SingleNode<C, B> {
    pub(crate) commands: C,
    pub(crate) backend: B,
    pub(crate) clock: Clock,
}

impl<C, B: RedisBackend> SingleNode<C, B> {
    pub(crate) fn new(commands: C, backend: B) -> Self {
        let clock = backend.clock();
        SingleNode {
            commands,
            backend,
            clock,
        }
    }
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

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn notifications(&self) -> Option<&crate::Notifications> {
        self.backend.notifications()
    }

    async fn acquire(
        &self,
        id: &str,
        ttl_ms: u64,
        started: Instant,
        bound: Duration,
    ) -> (Result<Option<Granted>, LockError>, Leftover) {
        let call = self.commands.acquire(&self.backend, id, ttl_ms, 0);
        let clock = &self.clock;
        let result = match bounded_call(clock, bound, call).await {
            Ok(0) => Ok(None),
            // Acquired, but so late that no validity is left: it may be
            // gone already, so the caller treats it as failed and cleans up.
            Ok(token) => validity(clock, started, ttl_ms)
                .map(|valid_until| Some(Granted { valid_until, token }))
                .ok_or_else(|| self.error("acquire", too_slow(clock, started))),
            Err(e) => Err(self.error("acquire", e)),
        };
        (result, None)
    }

    async fn issue_token(
        &self,
        id: &str,
        bound: Duration,
    ) -> (Result<Option<u64>, LockError>, Leftover) {
        let call = self.commands.fence(&self.backend, id, 0, FenceMode::Issue);
        let result = match bounded_call(&self.clock, bound, call).await {
            Ok(token) => Ok(u64::try_from(token).ok().filter(|t| *t > 0)),
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
        _still_held: StillHeld,
    ) -> (Result<Refreshed, LockError>, Leftover) {
        let call = self.commands.refresh(&self.backend, id, ttl_ms);
        let clock = &self.clock;
        let result = match bounded_call(clock, bound, call).await {
            Ok(true) => match validity(clock, started, ttl_ms) {
                Some(valid_until) => Ok(Refreshed::Extended { valid_until }),
                None => Err(self.error("refresh", too_slow(clock, started))),
            },
            Ok(false) => Ok(Refreshed::Lost(LostReason::Gone)),
            Err(e) => Err(self.error("refresh", e)),
        };
        (result, None)
    }

    async fn foreign_data(&self, bound: Duration) -> Option<String> {
        let check = self.commands.foreign_data(&self.backend);
        let found = crate::time::within(&self.clock, bound, check)
            .await
            .ok()??;
        Some(format!("the key holds a {found}, not a lock"))
    }

    async fn inspect(
        &self,
        lock_timeout_ms: u64,
        bound: Duration,
    ) -> Vec<Result<crate::inspect::NodeInspection, BackendError>> {
        let read =
            crate::inspect::inspect_node(&self.backend, self.commands.key(), lock_timeout_ms);
        vec![bounded_call(&self.clock, bound, read).await]
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
            match bounded_call(&self.clock, retry.bound(bound), call).await {
                // After a failed call that may have run, "not there" most
                // likely means that call removed it: not a loss.
                Ok(released) => return (Ok(released || failures > 0), None),
                Err(e) => {
                    failures += 1;
                    match retry.next_try(failures, bound) {
                        Some(at) if e.is_retryable() => sleep_until(&self.clock, at).await,
                        _ => return (Err(self.error("release", e)), None),
                    }
                }
            }
        }
    }
}

/// The error for a call answered after its hold's validity ran out.
pub(crate) fn too_slow(clock: &Clock, started: Instant) -> BackendError {
    BackendError::new(
        crate::BackendErrorKind::Timeout,
        format!(
            "the answer took {:?}, leaving too little of the lock timeout",
            clock.now().saturating_duration_since(started)
        ),
    )
}
