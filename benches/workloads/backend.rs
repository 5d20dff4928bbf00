//! The backend every workload uses, built in one place (`connect`), with
//! the client-side request count for `client_cmds_per_acq`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use redsem_core::{Arg, BackendError, RedisBackend, Reply, Script};
use redsem_redis::RedisRsBackend;

/// Counts the requests the client sends (round trips). `run_script` is left
/// to the trait default so a NOSCRIPT fallback counts as the two requests
/// it is.
#[derive(Debug, Clone)]
pub struct Counting<B> {
    inner: B,
    sent: Arc<AtomicU64>,
}

#[async_trait]
impl<B: RedisBackend> RedisBackend for Counting<B> {
    async fn eval_sha(&self, s: &Script, k: &[&str], a: &[Arg<'_>]) -> Result<Reply, BackendError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.eval_sha(s, k, a).await
    }
    async fn eval(&self, s: &Script, k: &[&str], a: &[Arg<'_>]) -> Result<Reply, BackendError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.eval(s, k, a).await
    }
    async fn set_nx_px(&self, key: &str, value: &str, ttl_ms: u64) -> Result<bool, BackendError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.set_nx_px(key, value, ttl_ms).await
    }
    fn clock(&self) -> redsem_core::Clock {
        self.inner.clock()
    }
    fn notifications(&self) -> Option<&redsem_core::Notifications> {
        self.inner.notifications()
    }
}

/// What every lock in the run is built on: one shared connection per server.
pub type Backend = Counting<RedisRsBackend>;

/// How the backends are made, for `options`.
pub const CLIENT: &str = "one shared redis::aio::MultiplexedConnection per server (redis-rs 1.x defaults) through RedisRsBackend::connect (release notifications on: one more RESP3 connection for subscriptions)";

/// The one place backends are constructed: a new backend capability (such
/// as a subscription for wake-on-release) is switched on here.
pub async fn connect(url: &str, sent: &Arc<AtomicU64>) -> Backend {
    let inner = RedisRsBackend::connect(url).await.expect("connect");
    Counting {
        inner,
        sent: sent.clone(),
    }
}
