//! Errors: [`LockError`] for lock operations, [`BackendError`] for what a
//! backend reports.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// Which lock kind an error is about; its `Display` is the name
/// redis-semaphore uses in messages (`mutex`, `multi-semaphore`, ...).
///
/// ```
/// use redsem_core::{LockKind, Semaphore};
/// use redsem_mock::MockBackend;
/// # futures::executor::block_on(async {
/// let guard = Semaphore::new(MockBackend::new(), "pool", 3)?.acquire().await?;
/// assert_eq!(guard.kind(), LockKind::Semaphore);
/// assert_eq!(guard.kind().to_string(), "semaphore");
/// # guard.release().await?;
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockKind {
    /// [`Mutex`](crate::Mutex).
    Mutex,
    /// [`Semaphore`](crate::Semaphore).
    Semaphore,
    /// [`MultiSemaphore`](crate::MultiSemaphore).
    MultiSemaphore,
    /// A Redlock mutex over several independent nodes.
    RedlockMutex,
    /// A Redlock semaphore over several independent nodes.
    RedlockSemaphore,
    /// A Redlock multi-semaphore over several independent nodes.
    RedlockMultiSemaphore,
}

impl LockKind {
    /// The name used in messages, such as `multi-semaphore`.
    ///
    /// ```
    /// use redsem_core::LockKind;
    /// assert_eq!(LockKind::MultiSemaphore.as_str(), "multi-semaphore");
    /// assert_eq!(LockKind::RedlockMutex.as_str(), "redlock-mutex");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            LockKind::Mutex => "mutex",
            LockKind::Semaphore => "semaphore",
            LockKind::MultiSemaphore => "multi-semaphore",
            LockKind::RedlockMutex => "redlock-mutex",
            LockKind::RedlockSemaphore => "redlock-semaphore",
            LockKind::RedlockMultiSemaphore => "redlock-multi-semaphore",
        }
    }
}

impl fmt::Display for LockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bound an acquire ran into, in [`LockError::Timeout`].
///
/// ```
/// use redsem_core::{AcquireLimit, LockError, LockOptions, Mutex};
/// use redsem_mock::MockBackend;
/// # futures::executor::block_on(async {
/// let redis = MockBackend::new();
/// let _held = Mutex::new(redis.clone(), "jobs")?.acquire().await?;
/// let options = LockOptions::builder().max_attempts(2).build()?;
/// let err = Mutex::with_options(redis, "jobs", options)?.acquire().await.unwrap_err();
/// assert!(matches!(err, LockError::Timeout { limit: AcquireLimit::Attempts(2), .. }));
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcquireLimit {
    /// The acquire timeout elapsed.
    Timeout(Duration),
    /// The attempt limit was used up.
    Attempts(u32),
}

impl fmt::Display for AcquireLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireLimit::Timeout(d) => write!(f, "acquire timeout of {d:?}"),
            AcquireLimit::Attempts(n) => write!(f, "limit of {n} attempt(s)"),
        }
    }
}

/// Why a held lock counts as lost, in [`LockError::Lost`].
///
/// ```
/// use redsem_core::{LockError, LostReason, Mutex};
/// use redsem_mock::MockBackend;
/// # futures::executor::block_on(async {
/// let redis = MockBackend::new();
/// let guard = Mutex::new(redis.clone(), "jobs")?.acquire().await?;
/// redis.del("mutex:jobs"); // someone deletes the key behind our back
/// let err = guard.release().await.unwrap_err();
/// assert!(matches!(err, LockError::Lost { reason: LostReason::Gone, .. }));
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// Redis answered that the hold is gone: it expired or another
    /// identifier owns the key now.
    Gone,
    /// No refresh could be confirmed before the lock timeout ran out (Redis
    /// unreachable or too slow), so the lock may have expired on the server.
    Unconfirmed {
        /// The last error seen while refreshing, if any.
        last_error: Option<String>,
    },
    /// Refresh was off or stopped and the lock timeout elapsed, so Redis
    /// has let the hold expire.
    Expired,
    /// A Redlock refresh no longer reached a quorum of nodes.
    QuorumLost {
        /// Nodes that still confirmed the hold.
        confirmed: usize,
        /// Votes needed.
        quorum: usize,
    },
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::Gone => f.write_str("it expired or was taken by another identifier"),
            LostReason::Expired => f.write_str("its lock timeout elapsed without a refresh"),
            LostReason::Unconfirmed { last_error: None } => {
                f.write_str("no refresh was confirmed within the lock timeout")
            }
            LostReason::Unconfirmed {
                last_error: Some(e),
            } => {
                write!(
                    f,
                    "no refresh was confirmed within the lock timeout (last error: {e})"
                )
            }
            LostReason::QuorumLost { confirmed, quorum } => {
                write!(
                    f,
                    "refresh confirmed on {confirmed} node(s), quorum is {quorum}"
                )
            }
        }
    }
}

/// One node's failure in a Redlock operation, listed in
/// [`LockError::QuorumNotReached`]; its `Display` is `node <n> <reason>`.
///
/// ```
/// use redsem_core::NodeFailure;
/// let failure = NodeFailure { node: 2, reason: "timed out".into(), retryable: true };
/// assert_eq!(failure.to_string(), "node 2 timed out");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFailure {
    /// The node's position in the node list, from 1.
    pub node: usize,
    /// What happened: the backend error, a timeout, or "held by another
    /// identifier".
    pub reason: String,
    /// Whether trying again can help (`false` for errors such as `NOPERM`
    /// or `WRONGTYPE` that the node will repeat).
    pub retryable: bool,
}

impl fmt::Display for NodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {} {}", self.node, self.reason)
    }
}

/// An error from a lock operation.
///
/// Match the variants, or use [`is_timeout`](LockError::is_timeout),
/// [`is_lost`](LockError::is_lost) and
/// [`is_unreachable`](LockError::is_unreachable):
///
/// ```
/// use redsem_core::{LockError, LockOptions, Mutex};
/// use redsem_mock::MockBackend;
/// # futures::executor::block_on(async {
/// let redis = MockBackend::new();
/// let _held = Mutex::new(redis.clone(), "jobs")?.acquire().await?;
/// let options = LockOptions::builder().max_attempts(1).build()?;
/// match Mutex::with_options(redis, "jobs", options)?.acquire().await {
///     Err(e) if e.is_unreachable() => panic!("Redis is down: {e}"),
///     Err(e) if e.is_timeout() => println!("busy, try later: {e}"),
///     Err(LockError::Lost { reason, .. }) => panic!("lost: {reason}"),
///     Err(e) => return Err(e),
///     Ok(_guard) => panic!("the lock is held"),
/// }
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// `acquire` did not get the lock within its acquire timeout or attempt
    /// limit.
    ///
    /// The lock may have been busy, or Redis unreachable: `failed_attempts`
    /// counts the attempts that got no answer, and `last_error` is the last
    /// such failure (also shown in the message).
    /// [`is_unreachable`](LockError::is_unreachable) tells the two apart.
    #[error(
        "Acquire {kind} {} timeout: reached the {limit} after {attempts} attempt(s){}",
        Short(key),
        failure_note(*failed_attempts, last_error.as_deref())
    )]
    Timeout {
        /// The lock kind.
        kind: LockKind,
        /// The Redis key, with its `mutex:`/`semaphore:` prefix.
        key: String,
        /// The bound that was reached.
        limit: AcquireLimit,
        /// Attempts made.
        attempts: u32,
        /// Attempts that failed with an error (no answer, a server that was
        /// unavailable, a Redlock quorum missed through node errors) rather
        /// than finding the lock busy.
        failed_attempts: u32,
        /// The last of those failures: a [`LockError::Backend`] or (Redlock)
        /// a [`LockError::QuorumNotReached`] with every node's story.
        #[source]
        last_error: Option<Box<LockError>>,
    },

    /// The lock was lost while held: refresh found it gone or could not
    /// confirm it in time, or release found it no longer held. Work done
    /// under the lock may not have been exclusive.
    #[error("Lost {kind} for key {}: {reason}", Short(key))]
    Lost {
        /// The lock kind.
        kind: LockKind,
        /// The Redis key, with its prefix.
        key: String,
        /// Why the lock counts as lost.
        reason: LostReason,
    },

    /// A Redlock operation succeeded on too few nodes.
    #[error(
        "{kind} {}: {operation} {succeeded} of {total}, needed {quorum}: {}",
        Short(key),
        join_failures(failures)
    )]
    QuorumNotReached {
        /// The lock kind.
        kind: LockKind,
        /// The Redis key, with its prefix.
        key: String,
        /// What succeeded on too few nodes: `acquired`, `refreshed` or
        /// `released`.
        operation: &'static str,
        /// Nodes where it succeeded.
        succeeded: usize,
        /// Nodes in the set.
        total: usize,
        /// Votes needed: `total / 2 + 1`.
        quorum: usize,
        /// Why each other node did not count.
        failures: Vec<NodeFailure>,
    },

    /// An option or argument is invalid; the message says what to change.
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        /// The option or argument, such as `lock_timeout` or `key`.
        option: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },

    /// This lock instance already holds the lock under its fixed identifier;
    /// a second hold would share the same slot in Redis.
    #[error(
        "{kind} {} is already held by this instance under identifier {}: \
         release that guard first, or let each acquire use a random identifier",
        Short(key),
        Short(identifier)
    )]
    AlreadyHeld {
        /// The lock kind.
        kind: LockKind,
        /// The Redis key, with its prefix.
        key: String,
        /// The fixed identifier.
        identifier: String,
    },

    /// redsem's background thread (timers, refresh) could not be started.
    #[error("{message}")]
    Background {
        /// What failed.
        message: String,
    },

    /// Too few replicas confirmed an acquire or refresh asked to be synced
    /// ([`ReplicaSync`](crate::ReplicaSync) with [`ReplicaPolicy::Fail`](crate::ReplicaPolicy::Fail)).
    /// For an acquire, what it took has been released.
    #[error(
        "{operation} {kind} {}: {acks} in time; check the replicas' link \
         (INFO replication) or lower ReplicaSync::new's count",
        Short(key)
    )]
    ReplicasNotConfirmed {
        /// The lock kind.
        kind: LockKind,
        /// The Redis key, with its prefix.
        key: String,
        /// `acquire` or `refresh`.
        operation: &'static str,
        /// How many replicas confirmed, of how many asked for.
        acks: crate::ReplicaAcks,
    },

    /// Redis (or the client) failed during an operation.
    #[error("{operation} {kind} {} failed: {source}", Short(key))]
    Backend {
        /// The lock kind.
        kind: LockKind,
        /// The Redis key, with its prefix.
        key: String,
        /// `acquire`, `refresh` or `release`.
        operation: &'static str,
        /// The backend's error.
        #[source]
        source: BackendError,
    },
}

/// Longest key or identifier shown whole in a message; longer ones are cut
/// (the error's fields keep them intact).
const SHOWN_CHARS: usize = 120;

/// Displays a key or identifier, cut after [`SHOWN_CHARS`] characters.
struct Short<'a>(&'a str);

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(SHOWN_CHARS) {
            None => f.write_str(self.0),
            Some((cut, _)) => write!(f, "{}...({} bytes)", &self.0[..cut], self.0.len()),
        }
    }
}

/// The tail of a timeout message: how many attempts failed, and the last
/// failure.
fn failure_note(failed: u32, last: Option<&LockError>) -> String {
    let Some(last) = last else {
        return String::new();
    };
    let what = match last {
        LockError::Backend { source, .. } => source.to_string(),
        other => other.to_string(),
    };
    if failed == 0 {
        return format!(" ({what})");
    }
    format!(" ({failed} failed; last error: {what})")
}

fn join_failures(failures: &[NodeFailure]) -> String {
    if failures.is_empty() {
        return "no node failed".to_owned();
    }
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl LockError {
    /// `true` for [`LockError::Timeout`].
    ///
    /// ```
    /// # use redsem_core::{LockOptions, Mutex};
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let redis = MockBackend::new();
    /// let _held = Mutex::new(redis.clone(), "jobs")?.acquire().await?;
    /// let options = LockOptions::builder().max_attempts(1).build()?;
    /// let err = Mutex::with_options(redis, "jobs", options)?.acquire().await.unwrap_err();
    /// assert!(err.is_timeout() && !err.is_unreachable());
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn is_timeout(&self) -> bool {
        matches!(self, LockError::Timeout { .. })
    }

    /// `true` for [`LockError::Lost`].
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let redis = MockBackend::new();
    /// let guard = Mutex::new(redis.clone(), "jobs")?.acquire().await?;
    /// redis.del("mutex:jobs");
    /// assert!(guard.release().await.unwrap_err().is_lost());
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn is_lost(&self) -> bool {
        matches!(self, LockError::Lost { .. })
    }

    /// `true` when Redis, not another holder, kept the lock from you: an
    /// acquire [`Timeout`](LockError::Timeout) in which every attempt failed
    /// with an error (no attempt found the lock busy), or a
    /// [`Backend`](LockError::Backend) error that retrying could fix.
    ///
    /// ```
    /// use redsem_core::{LockOptions, Mutex};
    /// use redsem_mock::MockBackend;
    /// use std::time::Duration;
    /// # futures::executor::block_on(async {
    /// let redis = MockBackend::new();
    /// redis.go_down();
    /// let options = LockOptions::builder().acquire_timeout(Duration::from_millis(50)).build()?;
    /// let err = Mutex::with_options(redis, "jobs", options)?.acquire().await.unwrap_err();
    /// assert!(err.is_timeout() && err.is_unreachable());
    /// assert!(err.to_string().contains("connection refused"), "{err}");
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn is_unreachable(&self) -> bool {
        match self {
            LockError::Timeout {
                attempts,
                failed_attempts,
                ..
            } => *failed_attempts > 0 && failed_attempts == attempts,
            LockError::Backend { source, .. } => source.is_retryable(),
            _ => false,
        }
    }

    pub(crate) fn invalid(option: &'static str, reason: impl Into<String>) -> Self {
        LockError::InvalidOption {
            option,
            reason: reason.into(),
        }
    }
}

/// What kind of failure a [`BackendError`] is.
///
/// ```
/// use redsem_core::{BackendError, BackendErrorKind};
/// let err = BackendError::new(BackendErrorKind::Connection, "connection reset");
/// assert_eq!(err.kind(), BackendErrorKind::Connection);
/// assert_eq!(BackendErrorKind::Timeout.to_string(), "timed out");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// `EVALSHA` named a script the server does not have; redsem retries
    /// with `EVAL`.
    NoScript,
    /// The connection failed or is closed; retrying later may help.
    Connection,
    /// The call did not finish in time; retrying may help.
    Timeout,
    /// Redis answered with an error reply that it will repeat (a script
    /// error, a wrong type, a missing permission).
    Server,
    /// Redis answered with an error reply that says it cannot serve the
    /// command *right now*: it is loading its data (`LOADING`), busy with a
    /// script (`BUSY`), a replica during a failover (`READONLY`,
    /// `MASTERDOWN`), or a cluster in transition (`TRYAGAIN`, `CLUSTERDOWN`,
    /// `MOVED`/`ASK` the client did not follow). Retrying later can help.
    Unavailable,
    /// The reply had a shape redsem did not expect.
    UnexpectedReply,
    /// The backend does not offer what was asked (such as
    /// [`wait_for_replicas`](crate::RedisBackend::wait_for_replicas) on a
    /// custom backend that does not implement it).
    Unsupported,
    /// Anything else.
    Other,
}

impl fmt::Display for BackendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendErrorKind::NoScript => "script not cached",
            BackendErrorKind::Connection => "connection error",
            BackendErrorKind::Timeout => "timed out",
            BackendErrorKind::Server => "server error",
            BackendErrorKind::Unavailable => "server unavailable",
            BackendErrorKind::UnexpectedReply => "unexpected reply",
            BackendErrorKind::Unsupported => "not supported",
            BackendErrorKind::Other => "error",
        })
    }
}

/// An error reported by a [`RedisBackend`](crate::RedisBackend): a kind, a
/// message, and the client's own error as `source` when there is one.
///
/// Backends return it; lock operations wrap it in [`LockError::Backend`]
/// (or retry it while [`is_retryable`](BackendError::is_retryable)).
///
/// ```
/// use redsem_core::{BackendError, BackendErrorKind};
/// let err = BackendError::new(BackendErrorKind::Server, "WRONGTYPE wrong kind of value");
/// assert_eq!(err.to_string(), "server error: WRONGTYPE wrong kind of value");
/// assert!(!err.is_retryable());
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct BackendError {
    kind: BackendErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl BackendError {
    /// An error of `kind` with a message.
    ///
    /// ```
    /// use redsem_core::{BackendError, BackendErrorKind};
    /// let err = BackendError::new(BackendErrorKind::Connection, "connection reset");
    /// assert_eq!(err.message(), "connection reset");
    /// assert!(err.is_retryable());
    /// ```
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        BackendError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` wrapping the client's error; the message is the
    /// client error's `Display`.
    ///
    /// ```
    /// use redsem_core::{BackendError, BackendErrorKind};
    /// use std::error::Error;
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
    /// let err = BackendError::from_source(BackendErrorKind::Connection, io);
    /// assert_eq!(err.message(), "reset by peer");
    /// assert!(err.source().is_some());
    /// ```
    pub fn from_source(
        kind: BackendErrorKind,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        BackendError {
            kind,
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// A timeout after `after`, raised by redsem's own per-call bound.
    ///
    /// ```
    /// use redsem_core::{BackendError, BackendErrorKind};
    /// use std::time::Duration;
    /// let err = BackendError::timeout(Duration::from_secs(2));
    /// assert_eq!(err.kind(), BackendErrorKind::Timeout);
    /// assert_eq!(err.message(), "no reply within 2s");
    /// ```
    pub fn timeout(after: Duration) -> Self {
        BackendError::new(
            BackendErrorKind::Timeout,
            format!("no reply within {after:?}"),
        )
    }

    /// The kind of failure.
    ///
    /// ```
    /// use redsem_core::{BackendError, BackendErrorKind};
    /// let err = BackendError::server_reply("NOSCRIPT No matching script");
    /// assert_eq!(err.kind(), BackendErrorKind::NoScript);
    /// ```
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// The message, without the kind.
    ///
    /// ```
    /// use redsem_core::{BackendError, BackendErrorKind};
    /// let err = BackendError::new(BackendErrorKind::Other, "boom");
    /// assert_eq!((err.message(), err.to_string().as_str()), ("boom", "error: boom"));
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An error for the Redis error reply `reply` (such as
    /// `"READONLY You can't write against a read only replica."`), of kind
    /// [`BackendErrorKind::NoScript`], [`BackendErrorKind::Unavailable`] or
    /// [`BackendErrorKind::Server`] by its error code (see
    /// [`BackendErrorKind::of_server_reply`]).
    ///
    /// ```
    /// use redsem_core::{BackendError, BackendErrorKind};
    /// let err = BackendError::server_reply("LOADING Redis is loading the dataset in memory");
    /// assert_eq!(err.kind(), BackendErrorKind::Unavailable);
    /// assert!(err.is_retryable());
    /// ```
    pub fn server_reply(reply: impl Into<String>) -> Self {
        let reply = reply.into();
        BackendError::new(BackendErrorKind::of_server_reply(&reply), reply)
    }

    /// Whether retrying the same call later can help (connection problems,
    /// timeouts, a server that is temporarily unavailable), as opposed to
    /// errors the server will repeat.
    ///
    /// ```
    /// use redsem_core::{BackendError, BackendErrorKind};
    /// assert!(BackendError::new(BackendErrorKind::Connection, "reset").is_retryable());
    /// assert!(!BackendError::server_reply("NOPERM no permission").is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            BackendErrorKind::Connection
                | BackendErrorKind::Timeout
                | BackendErrorKind::Unavailable
        )
    }
}

/// Error codes with which a healthy deployment answers while it is loading,
/// failing over or resharding: the command can succeed later.
const TRANSIENT_CODES: [&str; 8] = [
    "LOADING",
    "BUSY",
    "READONLY",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MOVED",
    "ASK",
];

impl BackendErrorKind {
    /// The kind of a Redis error reply, by its leading error code:
    /// `NOSCRIPT` is [`NoScript`](Self::NoScript); `LOADING`, `BUSY`,
    /// `READONLY`, `MASTERDOWN`, `TRYAGAIN`, `CLUSTERDOWN`, `MOVED` and `ASK`
    /// are [`Unavailable`](Self::Unavailable); anything else (`ERR`,
    /// `WRONGTYPE`, `NOPERM`, ...) is [`Server`](Self::Server). Adapters use
    /// it so every client classifies replies alike.
    ///
    /// ```
    /// use redsem_core::BackendErrorKind;
    /// assert_eq!(BackendErrorKind::of_server_reply("READONLY You can't write"), BackendErrorKind::Unavailable);
    /// assert_eq!(BackendErrorKind::of_server_reply("NOPERM no permission"), BackendErrorKind::Server);
    /// assert_eq!(BackendErrorKind::of_server_reply("NOSCRIPT No matching script"), BackendErrorKind::NoScript);
    /// ```
    pub fn of_server_reply(reply: &str) -> BackendErrorKind {
        let code = reply
            .trim_start_matches('-')
            .split_whitespace()
            .next()
            .unwrap_or("");
        if code == "NOSCRIPT" {
            BackendErrorKind::NoScript
        } else if TRANSIENT_CODES.contains(&code) {
            BackendErrorKind::Unavailable
        } else {
            BackendErrorKind::Server
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_message_names_kind_key_and_limit() {
        let err = LockError::Timeout {
            kind: LockKind::Mutex,
            key: "mutex:jobs".into(),
            limit: AcquireLimit::Timeout(Duration::from_millis(100)),
            attempts: 9,
            failed_attempts: 0,
            last_error: None,
        };
        assert_eq!(
            err.to_string(),
            "Acquire mutex mutex:jobs timeout: reached the acquire timeout of 100ms after 9 attempt(s)"
        );
    }

    #[test]
    fn timeout_message_carries_the_last_failure_and_long_keys_are_cut() {
        let last = LockError::Backend {
            kind: LockKind::Mutex,
            key: "k".repeat(1_000_000),
            operation: "acquire",
            source: BackendError::new(BackendErrorKind::Connection, "refused"),
        };
        let err = LockError::Timeout {
            kind: LockKind::Mutex,
            key: "k".repeat(1_000_000),
            limit: AcquireLimit::Attempts(3),
            attempts: 3,
            failed_attempts: 3,
            last_error: Some(Box::new(last)),
        };
        let msg = err.to_string();
        assert!(msg.len() < 400, "{}", msg.len());
        assert!(
            msg.ends_with("(3 failed; last error: connection error: refused)"),
            "{msg}"
        );
        assert!(msg.contains("...(1000000 bytes)"), "{msg}");
        assert!(err.is_unreachable());
    }

    #[test]
    fn quorum_message_lists_failed_nodes() {
        let err = LockError::QuorumNotReached {
            kind: LockKind::RedlockMutex,
            key: "mutex:jobs".into(),
            operation: "acquired",
            succeeded: 1,
            total: 3,
            quorum: 2,
            failures: vec![
                NodeFailure {
                    node: 2,
                    reason: "connection refused".into(),
                    retryable: true,
                },
                NodeFailure {
                    node: 3,
                    reason: "timed out".into(),
                    retryable: true,
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "redlock-mutex mutex:jobs: acquired 1 of 3, needed 2: node 2 connection refused, node 3 timed out"
        );
    }

    #[test]
    fn retryable_kinds() {
        assert!(BackendError::new(BackendErrorKind::Connection, "x").is_retryable());
        assert!(BackendError::timeout(Duration::from_millis(5)).is_retryable());
        assert!(!BackendError::new(BackendErrorKind::Server, "ERR").is_retryable());
        for reply in [
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script.",
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "MOVED 3999 127.0.0.1:6381",
            "ASK 3999 127.0.0.1:6381",
        ] {
            assert!(BackendError::server_reply(reply).is_retryable(), "{reply}");
        }
        for reply in [
            "ERR user_script:1: boom",
            "WRONGTYPE Operation",
            "NOPERM x",
            "BUSYGROUP x",
        ] {
            assert!(!BackendError::server_reply(reply).is_retryable(), "{reply}");
        }
    }
}
