//! The [`RedisBackend`] trait: the only thing a Redis client has to provide.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{BackendError, BackendErrorKind};
use crate::script::Script;

/// One argument of a script call: a string or an integer.
///
/// Integers are kept apart so an adapter can hand them to its client without
/// formatting them into a temporary `String` first. Redis receives every
/// argument as a string; [`Arg`]'s `Display` gives that decimal form.
///
/// ```
/// use redsem_core::Arg;
/// let args = [Arg::Str("worker-7"), Arg::Int(10_000)];
/// assert_eq!(args[1].to_string(), "10000");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg<'a> {
    /// A string argument, sent as its UTF-8 bytes.
    Str(&'a str),
    /// An integer argument, sent as its decimal representation.
    Int(i64),
}

impl fmt::Display for Arg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Str(s) => f.write_str(s),
            Arg::Int(i) => write!(f, "{i}"),
        }
    }
}

/// A reply from Redis, as far as redsem needs to read it.
///
/// ```
/// # futures::executor::block_on(async {
/// use redsem_core::{script, Arg, RedisBackend, Reply};
/// use redsem_mock::MockBackend;
/// let redis = MockBackend::new();
/// let reply = redis.run_script(&script::MUTEX_ACQUIRE, &["mutex:jobs"], &[Arg::Str("me"), Arg::Int(1000)]).await?;
/// assert_eq!(reply, Reply::Int(1));
/// # Ok::<(), redsem_core::BackendError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// The nil reply (a Lua `false`, a missing key).
    Nil,
    /// An integer reply.
    Int(i64),
    /// A bulk string reply.
    Data(Vec<u8>),
    /// A status reply such as `OK`.
    Status(String),
    /// An array reply.
    Array(Vec<Reply>),
}

impl Reply {
    /// The reply as an integer: an integer reply, or a string or status reply
    /// holding a decimal integer (some clients stringify integers, so `1` and
    /// `"1"` both count).
    ///
    /// ```
    /// use redsem_core::Reply;
    /// assert_eq!(Reply::Int(1).as_i64(), Some(1));
    /// assert_eq!(Reply::Data(b"1".to_vec()).as_i64(), Some(1));
    /// assert_eq!(Reply::Nil.as_i64(), None);
    /// ```
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            Reply::Data(bytes) => std::str::from_utf8(bytes).ok()?.trim().parse().ok(),
            Reply::Status(s) => s.trim().parse().ok(),
            Reply::Nil | Reply::Array(_) => None,
        }
    }

    /// The reply as a count, such as `WAIT`'s number of replicas (what a
    /// [`wait_for_replicas`](RedisBackend::wait_for_replicas) implementation
    /// returns), or a [`BackendErrorKind::UnexpectedReply`] error naming
    /// `command`.
    ///
    /// ```
    /// use redsem_core::Reply;
    /// assert_eq!(Reply::Int(2).expect_count("WAIT")?, 2);
    /// assert!(Reply::Int(-1).expect_count("WAIT").is_err());
    /// # Ok::<(), redsem_core::BackendError>(())
    /// ```
    pub fn expect_count(&self, command: &str) -> Result<u32, BackendError> {
        self.as_i64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                BackendError::new(
                    BackendErrorKind::UnexpectedReply,
                    format!("{command} returned {self:?}, expected a count"),
                )
            })
    }

    /// The reply as an integer, or a [`BackendErrorKind::UnexpectedReply`]
    /// error naming the script that produced it.
    pub(crate) fn expect_i64(&self, script: &Script) -> Result<i64, BackendError> {
        self.as_i64().ok_or_else(|| {
            BackendError::new(
                BackendErrorKind::UnexpectedReply,
                format!(
                    "script {} returned {self:?}, expected an integer",
                    script.name()
                ),
            )
        })
    }
}

/// Carries redsem's commands to one Redis server (or one Redis Cluster).
///
/// Every lock algorithm lives in `redsem-core`; a backend only sends a script
/// to Redis and converts the reply. Adapters exist for
/// [fred](https://docs.rs/redsem-fred) and
/// [redis-rs](https://docs.rs/redsem-redis), and `redsem-mock` is an
/// in-memory backend for unit tests. For any other client, implement the two
/// required methods, [`eval_sha`](RedisBackend::eval_sha) and
/// [`eval`](RedisBackend::eval).
///
/// The trait is object-safe: `Arc<dyn RedisBackend>` is a backend too, so
/// the Redlock lock kinds can mix clients.
///
/// # Contract
///
/// Every backend must guarantee:
///
/// 1. **One server per backend.** All calls on a backend (and on its clones,
///    if it is `Clone`) reach the same Redis server or the same Redis
///    Cluster. Redlock counts each backend as one independent vote.
/// 2. **Scripts run as given.** [`eval_sha`](RedisBackend::eval_sha) sends
///    `EVALSHA <script.sha1()> <keys.len()> <keys..> <args..>` and
///    [`eval`](RedisBackend::eval) sends `EVAL <script.source()> ...` with the
///    same keys and arguments, in order. On Redis Cluster the call goes to the
///    node that owns `keys[0]` (redsem keeps every key of one call in one
///    slot).
/// 3. **NOSCRIPT is recognisable.** When Redis answers `EVALSHA` with a
///    `NOSCRIPT` error, the error's kind is [`BackendErrorKind::NoScript`], so
///    redsem falls back to `EVAL` (two round trips in all).
/// 4. **Replies are converted faithfully.** Integer replies become
///    [`Reply::Int`] (a string `"1"` is accepted too), nil becomes
///    [`Reply::Nil`], error replies become errors classified by
///    [`BackendErrorKind::of_server_reply`] (so `READONLY`, `LOADING` and
///    other failover replies are [`BackendErrorKind::Unavailable`] and get
///    retried).
/// 5. **Errors are classified.** Connection problems are
///    [`BackendErrorKind::Connection`]; a client-side timeout is
///    [`BackendErrorKind::Timeout`]. redsem bounds every call with its own
///    timer, so a backend need not add one.
/// 6. **Dropping a call's future is allowed** at any point. The command may
///    still reach Redis; redsem accounts for that.
/// 7. **Runtime independence.** The returned futures may be polled from any
///    executor thread, including redsem's own refresh thread. An adapter whose
///    client needs a runtime context (tokio) must provide it while polling.
/// 8. **Never block.** A call must not block the thread that polls it (no
///    synchronous I/O, no `block_on` inside): redsem polls every lock's
///    refresh on one background thread, and a blocked call stalls them all.
///    redsem detects such stalls and reports them
///    ([`background_stalls`](crate::background_stalls)).
///
/// # Example: a complete custom backend
///
/// A backend for a hypothetical client with a `command(&[String])` method:
///
/// ```
/// use async_trait::async_trait;
/// use redsem_core::{Arg, BackendError, BackendErrorKind, RedisBackend, Reply, Script};
///
/// #[derive(Debug)]
/// struct MyClient; // stands in for your client
///
/// impl MyClient {
///     async fn command(&self, parts: Vec<String>) -> Result<i64, String> {
///         // a real client sends `parts` to Redis here
///         Err(format!("not connected ({} parts)", parts.len()))
///     }
/// }
///
/// #[derive(Debug)]
/// struct MyBackend(MyClient);
///
/// impl MyBackend {
///     async fn send(&self, verb: &str, body: &str, keys: &[&str], args: &[Arg<'_>])
///         -> Result<Reply, BackendError>
///     {
///         let mut parts = vec![verb.to_owned(), body.to_owned(), keys.len().to_string()];
///         parts.extend(keys.iter().map(|k| k.to_string()));
///         parts.extend(args.iter().map(|a| a.to_string()));
///         match self.0.command(parts).await {
///             Ok(n) => Ok(Reply::Int(n)),
///             Err(msg) if msg.starts_with("NOSCRIPT") => {
///                 Err(BackendError::new(BackendErrorKind::NoScript, msg))
///             }
///             Err(msg) => Err(BackendError::new(BackendErrorKind::Connection, msg)),
///         }
///     }
/// }
///
/// #[async_trait]
/// impl RedisBackend for MyBackend {
///     async fn eval_sha(&self, script: &Script, keys: &[&str], args: &[Arg<'_>])
///         -> Result<Reply, BackendError>
///     {
///         self.send("EVALSHA", script.sha1(), keys, args).await
///     }
///
///     async fn eval(&self, script: &Script, keys: &[&str], args: &[Arg<'_>])
///         -> Result<Reply, BackendError>
///     {
///         self.send("EVAL", script.source(), keys, args).await
///     }
/// }
///
/// let mutex = redsem_core::Mutex::new(MyBackend(MyClient), "jobs").unwrap();
/// let err = futures::executor::block_on(mutex.try_acquire()).unwrap_err();
/// assert!(err.to_string().contains("not connected"));
/// ```
#[async_trait]
pub trait RedisBackend: Send + Sync + fmt::Debug {
    /// Runs `EVALSHA script.sha1() keys.len() keys.. args..`.
    ///
    /// A `NOSCRIPT` reply must be returned as an error of kind
    /// [`BackendErrorKind::NoScript`].
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use redsem_core::{script, Arg, BackendErrorKind, RedisBackend};
    /// use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// let args = [Arg::Str("me"), Arg::Int(1000)];
    /// match redis.eval_sha(&script::MUTEX_ACQUIRE, &["mutex:jobs"], &args).await {
    ///     Err(e) if e.kind() == BackendErrorKind::NoScript => {} // not cached yet
    ///     other => assert_eq!(other?.as_i64(), Some(1)),
    /// }
    /// # Ok::<(), redsem_core::BackendError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the reply; the script may still run.
    async fn eval_sha(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError>;

    /// Runs `EVAL script.source() keys.len() keys.. args..`.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use redsem_core::{script, Arg, RedisBackend};
    /// use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// let args = [Arg::Str("me"), Arg::Int(1000)];
    /// let reply = redis.eval(&script::MUTEX_ACQUIRE, &["mutex:jobs"], &args).await?;
    /// assert_eq!(reply.as_i64(), Some(1));
    /// # Ok::<(), redsem_core::BackendError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As [`eval_sha`](RedisBackend::eval_sha).
    async fn eval(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError>;

    /// `SET key value PX ttl_ms NX`: `true` when the key was set.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use redsem_core::RedisBackend;
    /// use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// assert!(redis.set_nx_px("mutex:jobs", "me", 1000).await?);
    /// assert!(!redis.set_nx_px("mutex:jobs", "you", 1000).await?); // taken
    /// # Ok::<(), redsem_core::BackendError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// The provided implementation runs an equivalent script. Adapters
    /// override it with the plain command, which Redis executes as one
    /// command instead of two (EVALSHA + the SET inside it); the round trips
    /// are the same.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the reply; the key may still be set.
    async fn set_nx_px(&self, key: &str, value: &str, ttl_ms: u64) -> Result<bool, BackendError> {
        let ttl = i64::try_from(ttl_ms).unwrap_or(i64::MAX);
        let script = &crate::script::MUTEX_ACQUIRE;
        let reply = self
            .run_script(script, &[key], &[Arg::Str(value), Arg::Int(ttl)])
            .await?;
        Ok(reply.expect_i64(script)? == 1)
    }

    /// The clock redsem's timers follow for the locks on this backend
    /// (refresh ticks, loss detection, acquire retries and timeouts, call
    /// bounds, validity). Real backends keep the provided
    /// [`Clock::system`](crate::Clock::system); a test backend returns a
    /// [`Clock::manual`](crate::Clock::manual) that
    /// its test moves forward. Called once, when a lock is created.
    ///
    /// ```
    /// use redsem_core::RedisBackend;
    /// use redsem_mock::MockBackend;
    /// assert!(MockBackend::new().clock().is_manual());
    /// ```
    fn clock(&self) -> crate::Clock {
        crate::Clock::system()
    }

    /// Release notifications, if this backend can subscribe: waiters are
    /// then woken by a release instead of polling, and this backend's
    /// releases publish. `None` (the provided default) keeps polling,
    /// which always works.
    ///
    /// An adapter that implements it owns a [`Notifications`](crate::Notifications)
    /// hub fed by its subscriber connection; see its docs for the contract.
    ///
    /// ```
    /// use redsem_core::{Channels, RedisBackend};
    /// use redsem_mock::MockBackend;
    /// let hub = MockBackend::new().notifications().cloned();
    /// assert_eq!(hub.map(|h| h.channels()), Some(Channels::Global));
    /// ```
    fn notifications(&self) -> Option<&crate::Notifications> {
        None
    }

    /// Waits until the writes this backend sent before (on the connection
    /// that carries `key`'s commands) are on `replicas` replicas, or
    /// `timeout_ms` passed (`WAIT replicas timeout_ms`), and returns how
    /// many replicas acknowledged. Used by locks that ask for
    /// [`ReplicaSync`](crate::ReplicaSync); `key` routes the call on a
    /// Cluster.
    ///
    /// `WAIT` only covers writes sent on the same connection: adapters send
    /// it where the scripts go. The provided implementation answers with an
    /// error of kind [`Unsupported`](crate::BackendErrorKind::Unsupported).
    ///
    /// ```
    /// use redsem_core::RedisBackend;
    /// use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let redis = MockBackend::new();
    /// redis.set_replicas(2);
    /// assert_eq!(redis.wait_for_replicas("mutex:jobs", 1, 100).await?, 2);
    /// # Ok::<(), redsem_core::BackendError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits (the connection stays blocked on the
    /// server until `timeout_ms`).
    async fn wait_for_replicas(
        &self,
        key: &str,
        replicas: u32,
        timeout_ms: u64,
    ) -> Result<u32, BackendError> {
        let _ = (key, replicas, timeout_ms);
        Err(BackendError::new(
            BackendErrorKind::Unsupported,
            "this backend cannot wait for replicas (WAIT): implement \
             RedisBackend::wait_for_replicas, or drop the synced_replicas option",
        ))
    }

    /// The identity of the Redis server this backend reaches: its `run_id`.
    /// Redlock compares them to refuse two backends that reach the same
    /// server (which would count one server's vote twice).
    ///
    /// The provided implementation reads `run_id` from `INFO server` in a
    /// script (one round trip, once per Redlock lock instance and node).
    /// `Ok(None)` means the backend cannot tell; Redlock then trusts that
    /// node to be distinct.
    ///
    /// ```
    /// use redsem_core::RedisBackend;
    /// use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let node = MockBackend::new();
    /// let same = node.clone().server_id().await?;
    /// assert_eq!(node.server_id().await?, same);
    /// assert_ne!(MockBackend::new().server_id().await?, same);
    /// # Ok::<(), redsem_core::BackendError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn server_id(&self) -> Result<Option<String>, BackendError> {
        let script = &crate::script::SERVER_ID;
        Ok(match self.run_script(script, &[], &[]).await? {
            Reply::Data(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Reply::Status(s) => Some(s),
            _ => None,
        })
    }

    /// Runs a script by `EVALSHA`, falling back to `EVAL` when the server does
    /// not have it cached (two round trips, not the three of
    /// `SCRIPT LOAD` + `EVALSHA`).
    ///
    /// Backends should not override this method.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use redsem_core::{script, Arg, RedisBackend};
    /// use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.set("mutex:jobs", "me");
    /// let reply = redis.run_script(&script::MUTEX_RELEASE, &["mutex:jobs"], &[Arg::Str("me")]).await?;
    /// assert_eq!(reply.as_i64(), Some(1));
    /// assert!(!redis.exists("mutex:jobs"));
    /// # Ok::<(), redsem_core::BackendError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the reply; the script may still run.
    async fn run_script(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        match self.eval_sha(script, keys, args).await {
            Err(err) if err.kind() == BackendErrorKind::NoScript => {
                self.eval(script, keys, args).await
            }
            other => other,
        }
    }
}

macro_rules! forward_backend {
    ($($ptr:ty),*) => {$(
        #[async_trait]
        impl<T: RedisBackend + ?Sized> RedisBackend for $ptr {
            async fn eval_sha(&self, script: &Script, keys: &[&str], args: &[Arg<'_>])
                -> Result<Reply, BackendError>
            {
                (**self).eval_sha(script, keys, args).await
            }

            async fn eval(&self, script: &Script, keys: &[&str], args: &[Arg<'_>])
                -> Result<Reply, BackendError>
            {
                (**self).eval(script, keys, args).await
            }

            async fn set_nx_px(&self, key: &str, value: &str, ttl_ms: u64)
                -> Result<bool, BackendError>
            {
                (**self).set_nx_px(key, value, ttl_ms).await
            }

            async fn run_script(&self, script: &Script, keys: &[&str], args: &[Arg<'_>])
                -> Result<Reply, BackendError>
            {
                (**self).run_script(script, keys, args).await
            }

            async fn server_id(&self) -> Result<Option<String>, BackendError> {
                (**self).server_id().await
            }

            async fn wait_for_replicas(&self, key: &str, replicas: u32, timeout_ms: u64)
                -> Result<u32, BackendError>
            {
                (**self).wait_for_replicas(key, replicas, timeout_ms).await
            }

            fn clock(&self) -> crate::Clock {
                (**self).clock()
            }

            fn notifications(&self) -> Option<&crate::Notifications> {
                (**self).notifications()
            }
        }
    )*};
}

forward_backend!(Arc<T>, Box<T>, &T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_accept_integer_and_string_forms() {
        assert_eq!(Reply::Int(1).as_i64(), Some(1));
        assert_eq!(Reply::Data(b"1".to_vec()).as_i64(), Some(1));
        assert_eq!(Reply::Status("0".into()).as_i64(), Some(0));
        assert_eq!(Reply::Nil.as_i64(), None);
        assert_eq!(Reply::Data(b"x".to_vec()).as_i64(), None);
    }

    #[test]
    fn args_display_as_redis_sees_them() {
        assert_eq!(Arg::Int(-42).to_string(), "-42");
        assert_eq!(Arg::Str("id").to_string(), "id");
    }
}
