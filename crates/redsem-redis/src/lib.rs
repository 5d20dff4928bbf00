#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(any(feature = "tokio", feature = "smol")))]
compile_error!("redsem-redis needs the `tokio` or the `smol` feature");

mod convert;
mod notify;
mod runtime;
#[cfg(feature = "sentinel")]
mod sentinel;
mod tls;

use std::fmt;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, Value};

pub use redis;
#[cfg(feature = "sentinel")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
pub use sentinel::SentinelConnection;

/// Everything `redsem-core` offers (the six lock types, options, errors,
/// the backend trait), so this crate is the only dependency a user needs:
///
/// ```
/// use redsem_redis::{LockOptions, Mutex, Semaphore};
/// let _ = LockOptions::default();
/// # let _ = (std::marker::PhantomData::<Mutex<()>>, std::marker::PhantomData::<Semaphore<()>>);
/// ```
pub use redsem_core::*;

use crate::runtime::RuntimeContext;

/// A [`RedisBackend`] over a redis-rs async connection.
///
/// `C` is any cloneable redis-rs connection:
/// [`MultiplexedConnection`] (the default),
/// `redis::aio::ConnectionManager` (feature `connection-manager`) or
/// `redis::cluster_async::ClusterConnection` (feature `cluster`; redis-rs
/// routes `EVALSHA`/`EVAL` by the first key). Each call works on a clone of
/// the connection, as redis-rs's `&mut self` API requires; the clones of
/// these types share one connection.
///
/// Cloning the backend clones the connection handle: the clone talks to the
/// same server.
///
/// ```no_run
/// use redsem_redis::{Mutex, RedisRsBackend};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = RedisRsBackend::connect("redis://127.0.0.1:6379").await?;
/// let mutex = Mutex::new(backend, "jobs")?;
/// let guard = mutex.acquire().await?;
/// // ... work under the lock ...
/// guard.release().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisRsBackend<C = MultiplexedConnection> {
    conn: C,
    runtime: RuntimeContext,
    notifications: Option<Notifications>,
}

impl<C> RedisRsBackend<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A backend over `conn`, a connection you built and configured (TLS,
    /// response timeout, database...).
    ///
    /// With the `tokio` feature this captures the tokio runtime the caller
    /// runs in, if any, and enters it whenever it polls redis-rs, so the
    /// backend works from any executor. Call it inside the runtime that owns
    /// the connection, or use [`with_runtime`](Self::with_runtime).
    ///
    /// ```no_run
    /// use redsem_redis::{redis, RedisRsBackend};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379/2")?;
    /// let conn = client.get_multiplexed_async_connection().await?;
    /// let backend = RedisRsBackend::new(conn);
    /// # let _ = backend;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(conn: C) -> Self {
        RedisRsBackend {
            conn,
            runtime: RuntimeContext::current(),
            notifications: None,
        }
    }

    /// Wakes waiters on release instead of letting them poll: subscriptions
    /// go over one more connection to the server `client` reaches (RESP3,
    /// opened when a waiter first subscribes), shared by every lock on this
    /// backend and its clones. Releases through this backend then announce
    /// themselves (`PUBLISH` from the release script).
    ///
    /// `client` must reach the same single server (or Sentinel-managed
    /// primary) as the connection; on Redis Cluster leave this off (waiters
    /// poll). [`connect`](RedisRsBackend::connect) turns it on by itself.
    ///
    /// ```no_run
    /// use redsem_redis::{RedisBackend, RedisRsBackend};
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let conn = client.get_multiplexed_async_connection().await?;
    /// let backend = RedisRsBackend::new(conn).with_notifications(&client)?;
    /// assert!(backend.notifications().is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_notifications(mut self, client: &redis::Client) -> Result<Self, BackendError> {
        self.notifications = Some(notify::hub(client, self.runtime.clone())?);
        Ok(self)
    }

    /// Enters `handle`'s runtime while polling redis-rs, instead of the one
    /// captured by [`new`](Self::new). Use it when building the backend
    /// outside the runtime that owns the connection.
    ///
    /// ```no_run
    /// use redsem_redis::{redis, Mutex, RedisRsBackend};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runtime = tokio::runtime::Runtime::new()?;
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let conn = runtime.block_on(client.get_multiplexed_async_connection())?;
    /// let backend = RedisRsBackend::new(conn).with_runtime(runtime.handle().clone());
    /// // usable from any executor now, such as a plain `block_on`:
    /// let mutex = Mutex::new(backend, "jobs")?;
    /// futures::executor::block_on(async { mutex.acquire().await?.release().await })?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    #[must_use]
    pub fn with_runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = RuntimeContext::from_handle(handle);
        self
    }

    /// The connection.
    ///
    /// ```no_run
    /// # use redsem_redis::RedisRsBackend;
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let backend = RedisRsBackend::connect("redis://127.0.0.1:6379").await?;
    /// let mut conn = backend.connection().clone(); // for your own commands
    /// let _: () = redsem_redis::redis::cmd("PING").query_async(&mut conn).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn connection(&self) -> &C {
        &self.conn
    }

    /// The connection, giving up the backend.
    ///
    /// ```no_run
    /// # use redsem_redis::RedisRsBackend;
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let backend = RedisRsBackend::connect("redis://127.0.0.1:6379").await?;
    /// let conn: redsem_redis::redis::aio::MultiplexedConnection = backend.into_inner();
    /// # let _ = conn;
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_inner(self) -> C {
        self.conn
    }

    /// Sends `cmd` on a clone of the connection, inside the runtime.
    async fn query(&self, cmd: Cmd) -> Result<Value, BackendError> {
        let mut conn = self.conn.clone();
        self.runtime
            .run(async move { cmd.query_async::<Value>(&mut conn).await })
            .await
            .map_err(convert::error)
    }
}

impl RedisRsBackend<MultiplexedConnection> {
    /// Opens a [`MultiplexedConnection`] to `url` (such as
    /// `redis://127.0.0.1:6379/0`) with redis-rs's defaults and wraps it.
    ///
    /// The URL may carry credentials (`redis://user:password@host:6379`,
    /// `redis://:password@host` for the `default` user); redis-rs sends
    /// `AUTH` on connecting. A `rediss://` URL connects with TLS, which needs
    /// one of the features `tls-rustls`, `smol-tls-rustls`,
    /// `tls-native-tls` or `smol-tls-native-tls`: without them such a URL
    /// is refused, never tried in plaintext. The server certificate is
    /// checked against the platform's root certificates; for a private CA
    /// build the client with `redis::Client::build_with_tls` and pass the
    /// connection to [`new`](Self::new) (the crate docs show how).
    ///
    /// With the rustls features, `connect` installs ring's rustls
    /// `CryptoProvider` as the process default if no provider is installed
    /// yet. If you build connections yourself, do the same (or call
    /// `connect` once) first: redis-rs panics without one.
    ///
    /// Those defaults include a 500 ms response timeout, reported as
    /// [`Timeout`](redsem_core::BackendErrorKind::Timeout). For other
    /// settings build the connection yourself
    /// (`Client::get_multiplexed_async_connection_with_config`) and pass it
    /// to [`new`](Self::new).
    ///
    /// Under tokio, call it inside the runtime that is to drive the
    /// connection.
    ///
    /// ```no_run
    /// use redsem_redis::RedisRsBackend;
    ///
    /// # async fn run() -> Result<(), redsem_core::BackendError> {
    /// // A password for the ACL user `locks`:
    /// let backend = RedisRsBackend::connect("redis://locks:s3cret@127.0.0.1:6379/0").await?;
    /// // TLS (with the `tls-rustls` feature; an error without it):
    /// let tls = RedisRsBackend::connect("rediss://locks:s3cret@redis.example:6380").await?;
    /// # let _ = (backend, tls);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// An invalid URL, or a `rediss://` URL without TLS support compiled in,
    /// is an error of kind [`Other`](redsem_core::BackendErrorKind::Other);
    /// so are rejected credentials (redis-rs's "Password authentication
    /// failed"); a server that cannot be reached or a failed TLS handshake
    /// (an untrusted certificate, say) is an error of kind
    /// [`Connection`](redsem_core::BackendErrorKind::Connection) (or
    /// [`Timeout`](redsem_core::BackendErrorKind::Timeout)). A panic inside
    /// redis-rs while connecting is caught and returned as an error of kind
    /// [`Other`](redsem_core::BackendErrorKind::Other).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the half-open connection; nothing else
    /// happens.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        tls::check_url(url)?;
        if tls::wants_tls(url) {
            tls::ensure_crypto_provider();
        }
        let client = redis::Client::open(url).map_err(convert::error)?;
        let conn = tls::catch_panic(client.get_multiplexed_async_connection(), "connecting")
            .await?
            .map_err(convert::error)?;
        RedisRsBackend::new(conn).with_notifications(&client)
    }
}

impl<C> fmt::Debug for RedisRsBackend<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRsBackend")
            .field("connection", &std::any::type_name::<C>())
            .field("runtime", &self.runtime)
            .field("notifications", &self.notifications)
            .finish()
    }
}

/// `<verb> <body> <keys.len()> <keys..> <args..>`, integers passed as such.
fn script_cmd(verb: &str, body: &str, keys: &[&str], args: &[Arg<'_>]) -> Cmd {
    let mut cmd = redis::cmd(verb);
    cmd.arg(body).arg(keys.len()).arg(keys);
    for arg in args {
        match *arg {
            Arg::Str(s) => cmd.arg(s),
            Arg::Int(i) => cmd.arg(i),
        };
    }
    cmd
}

#[async_trait]
impl<C> RedisBackend for RedisRsBackend<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn eval_sha(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        convert::reply(
            self.query(script_cmd("EVALSHA", script.sha1(), keys, args))
                .await?,
        )
    }

    async fn eval(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        convert::reply(
            self.query(script_cmd("EVAL", script.source(), keys, args))
                .await?,
        )
    }

    async fn set_nx_px(&self, key: &str, value: &str, ttl_ms: u64) -> Result<bool, BackendError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("PX").arg(ttl_ms).arg("NX");
        convert::set_nx(self.query(cmd).await?)
    }

    /// `WAIT` on the connection the scripts use; on a Cluster redis-rs
    /// sends it to every primary and answers with the smallest count. Mind
    /// redis-rs's response timeout (500 ms by default): a longer
    /// [`ReplicaSync`] timeout is cut by it.
    async fn wait_for_replicas(
        &self,
        _key: &str,
        replicas: u32,
        timeout_ms: u64,
    ) -> Result<u32, BackendError> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout_ms);
        convert::reply(self.query(cmd).await?)?.expect_count("WAIT")
    }

    fn notifications(&self) -> Option<&Notifications> {
        self.notifications.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_commands_are_packed_in_order() {
        let cmd = script_cmd(
            "EVALSHA",
            "abc",
            &["k1", "k2"],
            &[Arg::Str("id"), Arg::Int(-5)],
        );
        let expected = redis::cmd("EVALSHA")
            .arg("abc")
            .arg(2)
            .arg("k1")
            .arg("k2")
            .arg("id")
            .arg("-5")
            .get_packed_command();
        assert_eq!(cmd.get_packed_command(), expected);
        let no_keys = script_cmd("EVAL", "return 1", &[], &[]);
        assert_eq!(
            no_keys.get_packed_command(),
            redis::cmd("EVAL")
                .arg("return 1")
                .arg(0)
                .get_packed_command()
        );
    }

    fn assert_backend<B: RedisBackend + Clone + 'static>() {}

    #[test]
    fn connection_types_make_backends() {
        assert_backend::<RedisRsBackend>();
        #[cfg(feature = "connection-manager")]
        assert_backend::<RedisRsBackend<redis::aio::ConnectionManager>>();
        #[cfg(feature = "cluster")]
        assert_backend::<RedisRsBackend<redis::cluster_async::ClusterConnection>>();
    }
}
