//! Redis Sentinel: a connection that follows the primary across failovers.
//!
//! A connection redis-rs's `SentinelClient` hands out goes to the primary of
//! the moment and stays there: after a failover it talks to a replica
//! (`READONLY`) or to nothing. [`SentinelConnection`] asks the sentinels
//! again when a call shows the primary is gone (a dropped connection, a
//! time-out, `READONLY`, `MASTERDOWN`), and swaps in a connection to the
//! primary they name. The failed call still returns its error, which redsem
//! retries; the retry goes to the new primary.
//!
//! One re-resolution at a time: concurrent callers share it (a
//! [`Shared`] future that whoever polls drives, so nothing is spawned and
//! nothing blocks), and a caller that is dropped midway leaves it to the
//! next one. Each of its steps is bounded by redis-rs's time-outs (1 s to
//! connect, 500 ms per reply by default).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::{BoxFuture, FutureExt, Shared};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionInfo, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};
use redsem_core::BackendError;

use crate::{convert, tls, RedisRsBackend};

/// A re-resolution of the primary, shared by the callers that wait for it.
type Reconnect = Shared<BoxFuture<'static, RedisResult<MultiplexedConnection>>>;

/// A redis-rs connection to the primary of a Sentinel-managed Redis, that
/// moves to the new primary after a failover.
///
/// It implements redis-rs's [`ConnectionLike`], so it serves redsem as
/// `RedisRsBackend<SentinelConnection>` (see
/// [`RedisRsBackend::sentinel`]) and your own commands as any other
/// connection. Clones share one connection and one view of the primary.
///
/// When a command fails because the primary is gone (connection dropped,
/// time-out, `READONLY` from a demoted primary, `MASTERDOWN`), the
/// connection asks the sentinels for the current primary, connects to it
/// and returns the command's error: redsem classifies it as retryable and
/// retries on the new primary. Calls made meanwhile wait for that one
/// re-resolution instead of starting their own.
///
/// ```no_run
/// use redsem_redis::redis::AsyncCommands;
/// use redsem_redis::SentinelConnection;
///
/// # async fn run() -> redsem_redis::redis::RedisResult<()> {
/// let sentinels = ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"];
/// let mut conn = SentinelConnection::connect(sentinels, "mymaster").await?;
/// let _: () = conn.set("greeting", "hello").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SentinelConnection {
    params: Arc<Params>,
    state: Arc<Mutex<State>>,
}

/// How to find and reach the primary.
struct Params {
    sentinels: Vec<ConnectionInfo>,
    service_name: String,
    node: SentinelNodeConnectionInfo,
    config: AsyncConnectionConfig,
}

struct State {
    conn: MultiplexedConnection,
    /// How many times the connection was replaced.
    generation: u64,
    /// The re-resolution in progress, if any.
    reconnect: Option<Reconnect>,
}

impl SentinelConnection {
    /// Asks the `sentinels` (URLs such as `redis://10.0.0.1:26379`) for the
    /// primary of `service_name` and connects to it with redis-rs's defaults
    /// (1 s to connect, 500 ms response timeout).
    ///
    /// ```no_run
    /// # use redsem_redis::SentinelConnection;
    /// # async fn run() -> redsem_redis::redis::RedisResult<()> {
    /// let conn = SentinelConnection::connect(["redis://127.0.0.1:26379"], "mymaster").await?;
    /// # let _ = conn;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// An invalid sentinel URL; no sentinel answering; no sentinel naming a
    /// primary of `service_name` that confirms it is one (`ROLE`); the
    /// primary refusing the connection.
    pub async fn connect<T: IntoConnectionInfo>(
        sentinels: impl IntoIterator<Item = T>,
        service_name: &str,
    ) -> RedisResult<Self> {
        Self::connect_with(
            sentinels,
            service_name,
            SentinelNodeConnectionInfo::default(),
            AsyncConnectionConfig::new(),
        )
        .await
    }

    /// Like [`connect`](Self::connect), with the settings for the primary:
    /// `node` (TLS, database, credentials of the Redis servers, which may
    /// differ from the sentinels' ones given in their URLs) and `config`
    /// (time-outs of the connection to the primary).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use redsem_redis::redis::sentinel::SentinelNodeConnectionInfo;
    /// use redsem_redis::redis::{AsyncConnectionConfig, RedisConnectionInfo};
    /// use redsem_redis::SentinelConnection;
    ///
    /// # async fn run() -> redsem_redis::redis::RedisResult<()> {
    /// let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(
    ///     RedisConnectionInfo::default().set_db(2).set_password("s3cret"),
    /// );
    /// let config = AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(1)));
    /// let conn = SentinelConnection::connect_with(
    ///     ["redis://127.0.0.1:26379"], "mymaster", node, config,
    /// ).await?;
    /// # let _ = conn;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with<T: IntoConnectionInfo>(
        sentinels: impl IntoIterator<Item = T>,
        service_name: &str,
        node: SentinelNodeConnectionInfo,
        config: AsyncConnectionConfig,
    ) -> RedisResult<Self> {
        let sentinels = sentinels
            .into_iter()
            .map(IntoConnectionInfo::into_connection_info)
            .collect::<RedisResult<Vec<_>>>()?;
        if sentinels.is_empty() {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "no sentinel address given",
            )));
        }
        let params = Arc::new(Params {
            sentinels,
            service_name: service_name.to_owned(),
            node,
            config,
        });
        let conn = resolve(Arc::clone(&params)).await?;
        Ok(SentinelConnection {
            params,
            state: Arc::new(Mutex::new(State {
                conn,
                generation: 0,
                reconnect: None,
            })),
        })
    }

    /// The name of the monitored primary (Sentinel's "master name").
    ///
    /// ```no_run
    /// # use redsem_redis::SentinelConnection;
    /// # async fn run() -> redsem_redis::redis::RedisResult<()> {
    /// let conn = SentinelConnection::connect(["redis://127.0.0.1:26379"], "mymaster").await?;
    /// assert_eq!(conn.service_name(), "mymaster");
    /// # Ok(())
    /// # }
    /// ```
    pub fn service_name(&self) -> &str {
        &self.params.service_name
    }

    /// How many times the connection moved to a (possibly new) primary
    /// since it was made: 0 until the first failover is noticed.
    ///
    /// ```no_run
    /// # use redsem_redis::SentinelConnection;
    /// # async fn run() -> redsem_redis::redis::RedisResult<()> {
    /// let conn = SentinelConnection::connect(["redis://127.0.0.1:26379"], "mymaster").await?;
    /// assert_eq!(conn.reconnects(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn reconnects(&self) -> u64 {
        self.lock().generation
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection to use, after the re-resolution in progress (if any).
    async fn current(&self) -> (MultiplexedConnection, u64) {
        let pending = self.lock().reconnect.clone();
        if let Some(pending) = pending {
            self.finish(pending).await;
        }
        let st = self.lock();
        (st.conn.clone(), st.generation)
    }

    /// The connection of `generation` failed as if the primary were gone:
    /// re-resolve, unless another caller already replaced that connection.
    async fn follow(&self, generation: u64) {
        let pending = {
            let mut st = self.lock();
            if st.generation != generation {
                return;
            }
            let params = Arc::clone(&self.params);
            st.reconnect
                .get_or_insert_with(|| resolve(params).boxed().shared())
                .clone()
        };
        self.finish(pending).await;
    }

    /// Awaits `pending`; the first caller to see it finish installs its
    /// connection (a failed one leaves the old connection in place, and the
    /// next failure tries again).
    async fn finish(&self, pending: Reconnect) {
        let outcome = pending.clone().await;
        let mut st = self.lock();
        if st.reconnect.as_ref().is_some_and(|r| r.ptr_eq(&pending)) {
            st.reconnect = None;
            if let Ok(conn) = outcome {
                st.conn = conn;
                st.generation += 1;
            }
        }
    }
}

/// Asks the sentinels for the primary and connects to it (redis-rs checks
/// that it answers `ROLE` as a primary).
async fn resolve(params: Arc<Params>) -> RedisResult<MultiplexedConnection> {
    let mut client = SentinelClient::build(
        params.sentinels.clone(),
        params.service_name.clone(),
        Some(params.node.clone()),
        SentinelServerType::Master,
    )?;
    client
        .get_async_connection_with_config(&params.config)
        .await
}

/// True if `result` says the primary this connection reaches is gone or no
/// longer a primary.
fn lost_primary<T>(result: &RedisResult<T>, server_error: impl Fn(&T) -> bool) -> bool {
    match result {
        Ok(value) => server_error(value),
        Err(err) => {
            err.is_io_error()
                || err.is_connection_dropped()
                || err.is_timeout()
                || matches!(
                    err.kind(),
                    ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
                )
        }
    }
}

/// An error reply saying the server is a replica.
fn demoted(value: &Value) -> bool {
    matches!(value, Value::ServerError(err)
        if matches!(err.kind(), Some(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)))
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (mut conn, generation) = self.current().await;
            let result = conn.req_packed_command(cmd).await;
            if lost_primary(&result, demoted) {
                self.follow(generation).await;
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (mut conn, generation) = self.current().await;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            if lost_primary(&result, |values| values.iter().any(demoted)) {
                self.follow(generation).await;
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.lock().conn.get_db()
    }
}

impl fmt::Debug for SentinelConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("SentinelConnection")
            .field("service_name", &self.params.service_name)
            .field("sentinels", &self.params.sentinels.len())
            .field("reconnects", &st.generation)
            .field("reconnecting", &st.reconnect.is_some())
            .finish()
    }
}

impl RedisRsBackend<SentinelConnection> {
    /// A backend on the primary of the Sentinel-managed Redis named
    /// `service_name`, found through the `sentinels` (URLs such as
    /// `redis://10.0.0.1:26379`; a `rediss://` URL needs a TLS feature, as
    /// for [`connect`](RedisRsBackend::connect)). It follows failovers; see
    /// [`SentinelConnection`]. For credentials, TLS or a database on the
    /// Redis servers, build the connection with
    /// [`SentinelConnection::connect_with`] and pass it to
    /// [`new`](RedisRsBackend::new).
    ///
    /// What a failover does to held locks: a hold whose refresh meets the
    /// new primary is refreshed there if its key was replicated before the
    /// failover, and reported lost otherwise (`lost()` resolves). Sentinel
    /// demotes a primary that is still running only some seconds after the
    /// failover (about 10 s); until then clients connected to it keep
    /// using it.
    ///
    /// Under tokio, call it inside the runtime that is to drive the
    /// connection.
    ///
    /// ```no_run
    /// use redsem_redis::{Mutex, RedisRsBackend};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let sentinels = ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"];
    /// let backend = RedisRsBackend::sentinel(sentinels, "mymaster").await?;
    /// let mutex = Mutex::new(backend, "jobs")?;
    /// let guard = mutex.acquire().await?;
    /// guard.release().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// An invalid URL, or a `rediss://` URL without TLS support compiled in,
    /// is an error of kind [`Other`](redsem_core::BackendErrorKind::Other);
    /// sentinels or a primary that cannot be reached, of kind
    /// [`Connection`](redsem_core::BackendErrorKind::Connection) (or
    /// [`Timeout`](redsem_core::BackendErrorKind::Timeout)); no primary of
    /// that name, [`Other`](redsem_core::BackendErrorKind::Other).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the half-open connections; nothing else
    /// happens.
    pub async fn sentinel<S: AsRef<str>>(
        sentinels: impl IntoIterator<Item = S>,
        service_name: &str,
    ) -> Result<Self, BackendError> {
        let urls: Vec<String> = sentinels
            .into_iter()
            .map(|url| url.as_ref().to_owned())
            .collect();
        for url in &urls {
            tls::check_url(url)?;
        }
        if urls.iter().any(|url| tls::wants_tls(url)) {
            tls::ensure_crypto_provider();
        }
        let connect = SentinelConnection::connect(urls, service_name);
        let conn = tls::catch_panic(connect, "connecting through the sentinels")
            .await?
            .map_err(convert::error)?;
        Ok(RedisRsBackend::new(conn))
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn error_reply(line: &str) -> Value {
        redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).expect("parses")
    }

    #[test]
    fn replies_of_a_demoted_primary_are_recognised() {
        for line in [
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down",
        ] {
            let value = error_reply(line);
            assert!(demoted(&value), "{line}");
            assert!(lost_primary(&Ok(value), demoted), "{line}");
        }
        for line in ["ERR boom", "NOSCRIPT No matching script", "BUSY running"] {
            assert!(!lost_primary(&Ok(error_reply(line)), demoted), "{line}");
        }
        assert!(!lost_primary(&Ok(Value::Int(1)), demoted));
    }

    #[test]
    fn dropped_connections_and_time_outs_mean_a_lost_primary() {
        let io = |kind| RedisError::from(std::io::Error::from(kind));
        for err in [
            io(std::io::ErrorKind::ConnectionRefused),
            io(std::io::ErrorKind::BrokenPipe),
            io(std::io::ErrorKind::TimedOut),
        ] {
            assert!(lost_primary::<Value>(&Err(err), demoted));
        }
        let client_side = RedisError::from((ErrorKind::Client, "bad argument"));
        assert!(!lost_primary::<Value>(&Err(client_side), demoted));
        let readonly = error_reply("READONLY no")
            .extract_error()
            .expect_err("error");
        assert!(lost_primary::<Value>(&Err(readonly), demoted));
    }

    #[test]
    fn a_pipeline_with_a_demoted_reply_is_recognised() {
        let values = vec![Value::Okay, error_reply("READONLY no")];
        assert!(lost_primary(&Ok(values), |v: &Vec<Value>| v
            .iter()
            .any(demoted)));
    }

    #[test]
    fn no_sentinels_is_an_error() {
        let result = futures::executor::block_on(SentinelConnection::connect(
            Vec::<String>::new(),
            "mymaster",
        ));
        let err = result.expect_err("no sentinels");
        assert_eq!(err.kind(), ErrorKind::InvalidClientConfig);
    }
}
