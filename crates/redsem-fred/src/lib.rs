#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod convert;
mod notify;
mod probe;
mod runtime;
mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::clients::Client;
use fred::interfaces::{ClientLike, KeysInterface, LuaInterface};
use fred::types::config::{Config, ReconnectPolicy};
use fred::types::{
    Builder, ClusterHash, CustomCommand, Expiration, MultipleKeys, SetOptions, Value,
};

pub use fred;

/// Everything `redsem-core` offers (the six lock types, options, errors,
/// the backend trait), so this crate is the only dependency a user needs:
///
/// ```
/// use redsem_fred::{LockOptions, Mutex, Semaphore};
/// let _ = LockOptions::default();
/// # let _ = (std::marker::PhantomData::<Mutex<()>>, std::marker::PhantomData::<Semaphore<()>>);
/// ```
pub use redsem_core::*;

use crate::probe::{Plan, Prober};
use crate::runtime::RuntimeContext;

/// A [`RedisBackend`] over a fred client.
///
/// `C` is any fred client type that implements
/// [`LuaInterface`] and [`KeysInterface`]: [`Client`] (the default) or
/// [`fred::clients::Pool`].
///
/// The client may be handed over before or after `init()`/`connect()`;
/// commands sent before the connection is up wait in fred's queue (within
/// redsem's own per-call timeout).
///
/// While the client is not connected, a call also tries, at most once a
/// second, a short-lived probe connection with the client's configuration:
/// if the server refuses it (a wrong password: `WRONGPASS`; no password:
/// `NOAUTH`; a failed TLS handshake...), the call fails at once with that
/// cause instead of waiting out its timeout. So a client whose `init()`
/// failed is reported for what it is. A probe that cannot reach the server
/// changes nothing.
///
/// The client's security settings (password, TLS, certificates) are the
/// ones you configured: with [`new`](Self::new) nothing is checked, in
/// particular fred built without a TLS feature connects to a `rediss://`
/// URL in plaintext. [`connect`](Self::connect) refuses that.
///
/// Cloning the backend clones the client handle: the clone talks to the same
/// server.
///
/// ```no_run
/// use redsem_fred::{FredBackend, Semaphore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = FredBackend::connect("redis://127.0.0.1:6379").await?;
/// let pool = Semaphore::new(backend, "api", 5)?;
/// let guard = pool.acquire().await?;
/// // ... one of at most 5 holders ...
/// guard.release().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FredBackend<C = Client> {
    client: C,
    runtime: RuntimeContext,
    /// Shared by clones: at most one probe a second for all of them.
    prober: Arc<Prober>,
    /// Release notifications, when a subscriber client is configured.
    notifications: Option<Notifications>,
}

impl<C> FredBackend<C>
where
    C: LuaInterface + KeysInterface + Send + Sync + 'static,
{
    /// A backend over `client`, a fred client you built and configured
    /// (TLS, timeouts, reconnect policy...).
    ///
    /// The client's security is your responsibility: `new` checks nothing.
    /// In particular, a client built from a `rediss://` URL with fred lacking
    /// a TLS feature talks plaintext; [`connect`](FredBackend::connect)
    /// refuses that case.
    ///
    /// This captures the tokio runtime the caller runs in, if any, and enters
    /// it whenever it polls fred, so the backend works from any executor.
    /// Call it inside the runtime that runs the client, or use
    /// [`with_runtime`](Self::with_runtime).
    ///
    /// ```no_run
    /// use redsem_fred::fred::interfaces::ClientLike;
    /// use redsem_fred::fred::types::{config::Config, Builder};
    /// use redsem_fred::FredBackend;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::from_url("redis://127.0.0.1:6379/2")?;
    /// let client = Builder::from_config(config).build()?;
    /// client.init().await?;
    /// let backend = FredBackend::new(client);
    /// # let _ = backend;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(client: C) -> Self {
        FredBackend {
            client,
            runtime: RuntimeContext::current(),
            prober: Prober::shared(),
            notifications: None,
        }
    }

    /// Wakes waiters on release instead of letting them poll: a fred
    /// `SubscriberClient` built from `config` (the configuration of the same
    /// server or cluster as the client; connected when a waiter first
    /// subscribes) carries one subscription per waited-on key, shared by
    /// every lock on this backend and its clones. Releases through this
    /// backend then announce themselves from the release script
    /// (`PUBLISH`, or `SPUBLISH` on a cluster).
    /// [`connect`](FredBackend::connect) turns it on by itself.
    ///
    /// ```no_run
    /// use redsem_fred::fred::prelude::*;
    /// use redsem_fred::{FredBackend, RedisBackend};
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::from_url("redis://127.0.0.1:6379")?;
    /// let client = Builder::from_config(config.clone()).build()?;
    /// client.init().await?;
    /// let backend = FredBackend::new(client).with_notifications(config)?;
    /// assert!(backend.notifications().is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_notifications(mut self, config: Config) -> Result<Self, BackendError> {
        self.notifications = Some(notify::hub(config, self.runtime.clone())?);
        Ok(self)
    }

    /// Enters `handle`'s runtime while polling fred, instead of the one
    /// captured by [`new`](Self::new). Use it when building the backend
    /// outside the runtime that runs the client.
    ///
    /// ```no_run
    /// use redsem_fred::{FredBackend, Mutex};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runtime = tokio::runtime::Runtime::new()?;
    /// let backend = runtime.block_on(FredBackend::connect("redis://127.0.0.1:6379"))?;
    /// let backend = backend.with_runtime(runtime.handle().clone());
    /// // usable from any executor now, such as a plain `block_on`:
    /// let mutex = Mutex::new(backend, "jobs")?;
    /// futures::executor::block_on(async { mutex.acquire().await?.release().await })?;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = RuntimeContext::from_handle(handle);
        self
    }

    /// The client.
    ///
    /// ```no_run
    /// # use redsem_fred::FredBackend;
    /// use redsem_fred::fred::interfaces::ClientLike;
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let backend = FredBackend::connect("redis://127.0.0.1:6379").await?;
    /// let _: String = backend.client().ping(None).await?; // for your own commands
    /// # Ok(())
    /// # }
    /// ```
    pub fn client(&self) -> &C {
        &self.client
    }

    /// The client, giving up the backend.
    ///
    /// ```no_run
    /// # use redsem_fred::FredBackend;
    /// use redsem_fred::fred::interfaces::ClientLike;
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let backend = FredBackend::connect("redis://127.0.0.1:6379").await?;
    /// let client = backend.into_inner();
    /// client.quit().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_inner(self) -> C {
        self.client
    }
}

impl<C> FredBackend<C>
where
    C: ClientLike,
{
    /// Sends a command (`call`) and awaits its reply inside the runtime; if
    /// the client is not connected, probes why (see the type's docs).
    async fn send<T>(
        &self,
        call: impl Future<Output = Result<T, fred::error::Error>>,
    ) -> Result<T, BackendError> {
        if !probe::disconnected(&self.client) {
            return self.runtime.run(call).await.map_err(convert::error);
        }
        match self.prober.plan() {
            Plan::Fail(err) => Err(err),
            Plan::Wait => self.runtime.run(call).await.map_err(convert::error),
            Plan::Probe => {
                let prober = Arc::clone(&self.prober);
                let client = &self.client;
                let probe = self.runtime.run(async move {
                    match probe::spawn(client, prober) {
                        Some(task) => task.await.ok().flatten(),
                        None => None,
                    }
                });
                probe::race(self.runtime.run(call), probe).await
            }
        }
    }
}

impl FredBackend<Client> {
    /// Connects a new fred [`Client`] to `url` and wraps it: parses the URL
    /// with [`Config::from_url`] (so `redis://user:password@host:6379/0`,
    /// `rediss://...`, `redis-cluster://...` and fred's other forms work),
    /// gives the client a reconnect policy (exponential backoff from 100 ms
    /// up to 5 s, without limit), and waits for `init()`.
    ///
    /// For a Sentinel-managed Redis, name the Sentinels and the monitored
    /// primary in a `redis-sentinel://` URL (no extra feature needed):
    /// `redis-sentinel://s1:26379?sentinelServiceName=mymaster&node=s2:26379&node=s3:26379`
    /// (credentials and database in it are the Redis servers'). fred asks
    /// the Sentinels for the primary, checks its `ROLE`, and asks again
    /// whenever it reconnects, so the backend follows failovers: a failover
    /// closes the connections to the old primary once Sentinel demotes it,
    /// and redsem retries the calls that failed meanwhile.
    ///
    /// A URL asking for TLS (`rediss://`, `rediss-cluster://`,
    /// `valkeys://`...) needs one of the features `enable-rustls-ring`,
    /// `enable-rustls` or `enable-native-tls` of this crate: without them it
    /// is refused, never tried in plaintext (fred alone would). With TLS the
    /// server certificate is checked against the platform's root
    /// certificates; for a private CA build the client yourself with a
    /// `fred::types::config::TlsConnector` and use [`new`](Self::new). With
    /// the rustls features, `connect` installs the rustls crypto provider of
    /// the feature (ring for `enable-rustls-ring`) as the process default if
    /// none is installed yet.
    ///
    /// Call it inside the tokio runtime that is to run the client.
    ///
    /// ```no_run
    /// use redsem_fred::FredBackend;
    ///
    /// # async fn run() -> Result<(), redsem_core::BackendError> {
    /// // A password for the ACL user `locks`:
    /// let backend = FredBackend::connect("redis://locks:s3cret@127.0.0.1:6379/0").await?;
    /// // TLS (with the `enable-rustls-ring` feature; an error without it):
    /// let tls = FredBackend::connect("rediss://locks:s3cret@redis.example:6380").await?;
    /// // The primary that three Sentinels know as `mymaster`:
    /// let sentinel = FredBackend::connect(
    ///     "redis-sentinel://10.0.0.1:26379?sentinelServiceName=mymaster&node=10.0.0.2:26379&node=10.0.0.3:26379",
    /// ).await?;
    /// # let _ = (backend, tls, sentinel);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// An invalid URL, or one asking for TLS without TLS support compiled
    /// in, is an error of kind
    /// [`Other`](redsem_core::BackendErrorKind::Other); a server that cannot
    /// be reached, [`Connection`](redsem_core::BackendErrorKind::Connection);
    /// rejected credentials, [`Server`](redsem_core::BackendErrorKind::Server)
    /// with the server's reply (`WRONGPASS ...`). A panic inside fred while
    /// connecting is caught and returned as an error of kind
    /// [`Other`](redsem_core::BackendErrorKind::Other).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the client before it is handed out; its
    /// connection task ends once it notices.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        tls::check_url(url)?;
        if tls::wants_tls(url) {
            tls::ensure_crypto_provider();
        }
        let config =
            tls::catch(|| Config::from_url(url), "parsing the URL")?.map_err(convert::error)?;
        let client = Builder::from_config(config.clone())
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()
            .map_err(convert::error)?;
        let runtime = RuntimeContext::current();
        let init = tls::catch_panic(runtime.run(client.init()), "connecting").await;
        match init {
            Ok(Ok(_connection_task)) => {
                let notifications = Some(notify::hub(config, runtime.clone())?);
                Ok(FredBackend {
                    client,
                    runtime,
                    prober: Prober::shared(),
                    notifications,
                })
            }
            Ok(Err(err)) => {
                // Stops the reconnect policy; bounded, it is only tidying.
                let quit =
                    async { tokio::time::timeout(Duration::from_secs(1), client.quit()).await };
                let _ = runtime.run(quit).await;
                Err(convert::error(err))
            }
            Err(panicked) => Err(panicked),
        }
    }
}

fn keys(keys: &[&str]) -> MultipleKeys {
    keys.iter().copied().collect()
}

#[async_trait]
impl<C> RedisBackend for FredBackend<C>
where
    C: LuaInterface + KeysInterface + std::fmt::Debug + Send + Sync + 'static,
{
    async fn eval_sha(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        let call = self.client.evalsha::<Value, _, _, _>(
            script.sha1(),
            self::keys(keys),
            convert::args(args),
        );
        self.send(call).await.map(convert::reply)
    }

    async fn eval(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        let call = self.client.eval::<Value, _, _, _>(
            fred::util::static_str(script.source()),
            self::keys(keys),
            convert::args(args),
        );
        self.send(call).await.map(convert::reply)
    }

    async fn set_nx_px(&self, key: &str, value: &str, ttl_ms: u64) -> Result<bool, BackendError> {
        let ttl = Expiration::PX(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
        let call =
            self.client
                .set::<Value, _, _>(key, value, Some(ttl), Some(SetOptions::NX), false);
        convert::set_nx(self.send(call).await?)
    }

    /// `WAIT`, sent to the node that serves `key` (its hash slot on a
    /// Cluster). With a [`Pool`](fred::clients::Pool) it runs on the pool's
    /// next connection, which may not be the one that carried the script:
    /// use a single [`Client`] for synced grants.
    async fn wait_for_replicas(
        &self,
        key: &str,
        replicas: u32,
        timeout_ms: u64,
    ) -> Result<u32, BackendError> {
        let slot = fred::util::redis_keyslot(key.as_bytes());
        let wait = CustomCommand::new_static("WAIT", ClusterHash::Custom(slot), false);
        let timeout = i64::try_from(timeout_ms).unwrap_or(i64::MAX);
        let call = self
            .client
            .custom::<Value, Value>(wait, vec![i64::from(replicas).into(), timeout.into()]);
        convert::reply(self.send(call).await?).expect_count("WAIT")
    }

    fn notifications(&self) -> Option<&Notifications> {
        self.notifications.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_backend<B: RedisBackend + Clone + 'static>() {}

    #[test]
    fn sentinel_urls_make_sentinel_configs() {
        let url =
            "redis-sentinel://127.0.0.1:26379?sentinelServiceName=mymaster&node=127.0.0.1:26380";
        let config = Config::from_url(url).map_err(|e| e.to_string());
        assert!(
            config.as_ref().is_ok_and(|c| c.server.is_sentinel()),
            "{config:?}"
        );
    }

    #[test]
    fn client_types_make_backends() {
        assert_backend::<FredBackend>();
        assert_backend::<FredBackend<fred::clients::Pool>>();
    }
}
