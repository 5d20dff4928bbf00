//! One Redis node: a redis-rs connection that is (re)opened on demand.
//!
//! redis-rs's multiplexed connection does not reconnect, and a Redlock node
//! that is down when redsem starts must still be tried later. Each call
//! here reuses the open connection, or opens one first; a connection error
//! drops it so that the next call reconnects.

use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use redsem_core::{Arg, BackendError, BackendErrorKind, RedisBackend, Reply, Script};
use redsem_redis::RedisRsBackend;

use crate::cli::redact;

/// Bound on opening one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A Redis node, cheap to clone (clones share the connection).
#[derive(Clone)]
pub(crate) struct Node {
    url: Arc<str>,
    conn: Arc<StdMutex<Option<RedisRsBackend>>>,
    runtime: tokio::runtime::Handle,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("url", &redact(&self.url))
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node for `url`, not connected yet. Call inside the tokio runtime.
    pub(crate) fn new(url: &str) -> Self {
        Node {
            url: url.into(),
            conn: Arc::new(StdMutex::new(None)),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// The URL, password redacted.
    pub(crate) fn shown_url(&self) -> String {
        redact(&self.url)
    }

    fn cached(&self) -> Option<RedisRsBackend> {
        self.conn.lock().ok().and_then(|c| c.clone())
    }

    fn store(&self, backend: Option<RedisRsBackend>) {
        if let Ok(mut slot) = self.conn.lock() {
            *slot = backend;
        }
    }

    /// The open connection, or a new one.
    pub(crate) async fn backend(&self) -> Result<RedisRsBackend, BackendError> {
        if let Some(backend) = self.cached() {
            return Ok(backend);
        }
        let url = self.url.clone();
        // Spawned on the runtime: redsem may poll this from its own thread.
        let connecting = self.runtime.spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, RedisRsBackend::connect(&url)).await {
                Ok(result) => result,
                Err(_) => Err(BackendError::timeout(CONNECT_TIMEOUT)),
            }
        });
        let backend = connecting
            .await
            .map_err(|e| BackendError::new(BackendErrorKind::Other, e.to_string()))??;
        self.store(Some(backend.clone()));
        Ok(backend)
    }

    /// The redis-rs connection, for reads of our own (`status`).
    pub(crate) async fn connection(
        &self,
    ) -> Result<redsem_redis::redis::aio::MultiplexedConnection, BackendError> {
        Ok(self.backend().await?.connection().clone())
    }

    /// Forgets the connection after `err` if it was a connection failure.
    pub(crate) fn check<T>(&self, result: Result<T, BackendError>) -> Result<T, BackendError> {
        if let Err(err) = &result {
            if matches!(
                err.kind(),
                BackendErrorKind::Connection | BackendErrorKind::Timeout
            ) {
                self.store(None);
            }
        }
        result
    }
}

#[async_trait]
impl RedisBackend for Node {
    async fn eval_sha(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        let backend = self.check(self.backend().await)?;
        self.check(backend.eval_sha(script, keys, args).await)
    }

    async fn eval(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        let backend = self.check(self.backend().await)?;
        self.check(backend.eval(script, keys, args).await)
    }

    async fn set_nx_px(&self, key: &str, value: &str, ttl_ms: u64) -> Result<bool, BackendError> {
        let backend = self.check(self.backend().await)?;
        self.check(backend.set_nx_px(key, value, ttl_ms).await)
    }
}
