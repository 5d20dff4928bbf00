//! The single-node protocol: one backend, one vote.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::backend::RedisBackend;
use crate::clock::Clock;
use crate::commands::{Commands, FenceMode};
use crate::error::{BackendError, LockError, LockKind, LostReason};
use crate::options::LockOptions;
use crate::protocol::{validity, Granted, Leftover, Protocol, Refreshed, Retry, StillHeld};
use crate::replicas::{ReplicaAcks, ReplicaSync};
use crate::time::{bounded_call, sleep_until};

/// `C`'s commands on one backend.
#[derive(Debug)]
pub(crate) struct SingleNode<C, B> {
    pub(crate) commands: C,
    pub(crate) backend: B,
    pub(crate) clock: Clock,
    /// Replicas to confirm each grant on, if asked for.
    sync: Option<ReplicaSync>,
}

impl<C, B: RedisBackend> SingleNode<C, B> {
    pub(crate) fn new(commands: C, backend: B, options: &LockOptions) -> Self {
        let clock = backend.clock();
        SingleNode {
            commands,
            backend,
            clock,
            sync: options.synced_replicas,
        }
    }
}

impl<C: Commands, B: RedisBackend> SingleNode<C, B> {
    /// Confirms a grant on replicas when the lock asks for it: `Ok(None)`
    /// when it does not, the replicas' count when the grant stands.
    async fn synced(
        &self,
        operation: &'static str,
        bound: Duration,
    ) -> Result<Option<ReplicaAcks>, LockError> {
        let Some(sync) = &self.sync else {
            return Ok(None);
        };
        let what = (self.commands.kind(), self.commands.key(), operation);
        let acks = sync
            .confirm(&self.backend, &self.clock, what, bound)
            .await?;
        Ok(Some(acks))
    }

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
        let token = match bounded_call(clock, bound, call).await {
            Ok(0) => return (Ok(None), None),
            Ok(token) => token,
            Err(e) => return (Err(self.error("acquire", e)), None),
        };
        // An error from here on leaves the hold in Redis: the caller
        // releases it.
        let replicas = match self.synced("acquire", bound).await {
            Ok(replicas) => replicas,
            Err(e) => return (Err(e), None),
        };
        // Acquired, but so late that no validity is left: it may be gone
        // already, so the caller treats it as failed and cleans up.
        let result = validity(clock, started, ttl_ms)
            .map(|valid_until| {
                Some(Granted {
                    valid_until,
                    token,
                    replicas,
                })
            })
            .ok_or_else(|| self.error("acquire", too_slow(clock, started)));
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
        match bounded_call(clock, bound, call).await {
            Ok(true) => {}
            Ok(false) => return (Ok(Refreshed::Lost(LostReason::Gone)), None),
            Err(e) => return (Err(self.error("refresh", e)), None),
        }
        let result = self.synced("refresh", bound).await.and_then(|replicas| {
            let valid_until = validity(clock, started, ttl_ms)
                .ok_or_else(|| self.error("refresh", too_slow(clock, started)))?;
            Ok(Refreshed::Extended {
                valid_until,
                replicas,
            })
        });
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
