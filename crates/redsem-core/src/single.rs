//! The single-node protocol: one backend, one vote.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::backend::RedisBackend;
use crate::commands::Commands;
use crate::error::{BackendError, LockError, LockKind, LostReason};
use crate::protocol::{Protocol, Refreshed};
use crate::time::bounded_call;

/// `C`'s commands on one backend.
#[derive(Debug)]
pub(crate) struct SingleNode<C, B> {
    pub(crate) commands: C,
    pub(crate) backend: B,
}

/// When a hold confirmed by a call sent at `started` runs out.
pub(crate) fn valid_until(started: Instant, ttl_ms: u64) -> Instant {
    started
        .checked_add(Duration::from_millis(ttl_ms))
        .unwrap_or_else(crate::time::far_future)
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
    ) -> Result<Option<Instant>, LockError> {
        let call = self.commands.acquire(&self.backend, id, ttl_ms);
        match bounded_call(bound, call).await {
            Ok(true) => Ok(Some(valid_until(started, ttl_ms))),
            Ok(false) => Ok(None),
            Err(e) => Err(self.error("acquire", e)),
        }
    }

    async fn refresh(
        &self,
        id: &str,
        ttl_ms: u64,
        started: Instant,
        bound: Duration,
    ) -> Result<Refreshed, BackendError> {
        let call = self.commands.refresh(&self.backend, id, ttl_ms);
        Ok(if bounded_call(bound, call).await? {
            Refreshed::Extended {
                valid_until: valid_until(started, ttl_ms),
            }
        } else {
            Refreshed::Lost(LostReason::Gone)
        })
    }

    async fn release(&self, id: &str, bound: Duration) -> Result<bool, LockError> {
        let call = self.commands.release(&self.backend, id);
        bounded_call(bound, call)
            .await
            .map_err(|e| self.error("release", e))
    }
}
