//! Synced grants: an acquire or refresh counts only once replicas have it
//! (`WAIT numreplicas timeout` after the script), so a failover to one of
//! them cannot lose it.

use std::fmt;
use std::time::Duration;

use crate::backend::RedisBackend;
use crate::clock::Clock;
use crate::error::{LockError, LockKind};
use crate::time::bounded_call;

/// The default time replicas get to confirm a grant.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// Asks every acquire and refresh of a single-node lock to be confirmed on
/// `replicas` replicas before it counts: redsem sends `WAIT` after the
/// script, one more round trip, which returns as soon as the replicas have
/// acknowledged (about one replication round trip) or after
/// [`timeout`](Self::timeout). Set it with
/// [`LockOptionsBuilder::synced_replicas`](crate::LockOptionsBuilder::synced_replicas).
///
/// Without it a failover to a replica that had not yet received a fresh
/// grant loses the hold without telling the holder, and the next holder
/// gets the lock too. With it, an acquired or refreshed hold is on
/// `replicas` replicas; a failover can still lose it if Sentinel promotes
/// a replica that was not among them (ask for all of them), or if the
/// replicas lose it themselves (a restart without persistence).
///
/// ```
/// use std::time::Duration;
/// use redsem_core::{LockOptions, Mutex, ReplicaPolicy, ReplicaSync};
/// use redsem_mock::MockBackend;
/// # futures::executor::block_on(async {
/// let redis = MockBackend::new();
/// redis.set_replicas(1); // the mock answers WAIT with this count
/// let options = LockOptions::builder()
///     .synced_replicas(ReplicaSync::new(1).timeout(Duration::from_millis(50)))
///     .build()?;
/// let guard = Mutex::with_options(redis.clone(), "jobs", options)?.acquire().await?;
/// assert_eq!(guard.replicas().map(|acks| acks.confirmed), Some(1));
/// # guard.release().await?;
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaSync {
    replicas: u32,
    timeout: Duration,
    policy: ReplicaPolicy,
}

/// What an acquire or refresh does when fewer replicas confirm it than
/// [`ReplicaSync`] asks for.
///
/// ```
/// use redsem_core::{ReplicaPolicy, ReplicaSync};
/// assert_eq!(ReplicaSync::new(1).policy(), ReplicaPolicy::Fail);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaPolicy {
    /// The default. An acquire fails with
    /// [`LockError::ReplicasNotConfirmed`] (and what it took is released);
    /// a refresh counts as failed: it is retried, and the hold is reported
    /// lost if no refresh is confirmed before it would expire.
    #[default]
    Fail,
    /// The grant stands; [`LockGuard::replicas`](crate::LockGuard::replicas)
    /// tells how many replicas confirmed it.
    Report,
}

/// How many replicas confirmed the last acquire or refresh of a hold.
///
/// ```
/// use redsem_core::ReplicaAcks;
/// let acks = ReplicaAcks { confirmed: 1, wanted: 2 };
/// assert!(!acks.is_confirmed());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaAcks {
    /// Replicas that acknowledged it (`WAIT`'s answer; 0 when `WAIT` failed).
    pub confirmed: u32,
    /// Replicas asked for.
    pub wanted: u32,
}

impl ReplicaAcks {
    /// `true` when at least the wanted replicas confirmed.
    ///
    /// ```
    /// use redsem_core::ReplicaAcks;
    /// assert!(ReplicaAcks { confirmed: 2, wanted: 1 }.is_confirmed());
    /// ```
    pub fn is_confirmed(&self) -> bool {
        self.confirmed >= self.wanted
    }
}

impl fmt::Display for ReplicaAcks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} replicas confirmed",
            self.confirmed, self.wanted
        )
    }
}

impl ReplicaSync {
    /// Confirm on `replicas` replicas (at least 1; checked by
    /// [`build`](crate::LockOptionsBuilder::build)), waiting up to 100 ms,
    /// failing when they do not confirm.
    ///
    /// ```
    /// use std::time::Duration;
    /// use redsem_core::ReplicaSync;
    /// let sync = ReplicaSync::new(2);
    /// assert_eq!((sync.replicas(), sync.max_wait()), (2, Duration::from_millis(100)));
    /// ```
    pub fn new(replicas: u32) -> Self {
        ReplicaSync {
            replicas,
            timeout: DEFAULT_TIMEOUT,
            policy: ReplicaPolicy::Fail,
        }
    }

    /// How long `WAIT` waits for the replicas (above zero, below the lock
    /// timeout). A shared connection carries nothing else while it waits,
    /// so keep it short.
    ///
    /// ```
    /// use std::time::Duration;
    /// use redsem_core::ReplicaSync;
    /// let sync = ReplicaSync::new(1).timeout(Duration::from_millis(20));
    /// assert_eq!(sync.max_wait(), Duration::from_millis(20));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to do when too few replicas confirm (default
    /// [`ReplicaPolicy::Fail`]).
    ///
    /// ```
    /// use redsem_core::{ReplicaPolicy, ReplicaSync};
    /// let sync = ReplicaSync::new(1).on_missing(ReplicaPolicy::Report);
    /// assert_eq!(sync.policy(), ReplicaPolicy::Report);
    /// ```
    #[must_use]
    pub fn on_missing(mut self, policy: ReplicaPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Replicas asked for.
    ///
    /// ```
    /// assert_eq!(redsem_core::ReplicaSync::new(3).replicas(), 3);
    /// ```
    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// How long `WAIT` waits, as set by [`timeout`](Self::timeout).
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(redsem_core::ReplicaSync::new(1).max_wait(), Duration::from_millis(100));
    /// ```
    pub fn max_wait(&self) -> Duration {
        self.timeout
    }

    /// The policy when too few confirm.
    ///
    /// ```
    /// use redsem_core::{ReplicaPolicy, ReplicaSync};
    /// assert_eq!(ReplicaSync::new(1).policy(), ReplicaPolicy::Fail);
    /// ```
    pub fn policy(&self) -> ReplicaPolicy {
        self.policy
    }

    /// The problem with these settings under `lock_timeout`, if any.
    pub(crate) fn check(&self, lock_timeout: Duration) -> Result<(), LockError> {
        if self.replicas == 0 {
            return Err(LockError::invalid(
                "synced_replicas",
                "must ask for at least 1 replica; leave the option unset to skip WAIT",
            ));
        }
        if self.timeout < Duration::from_millis(1) || self.timeout >= lock_timeout {
            return Err(LockError::invalid(
                "synced_replicas",
                format!(
                    "timeout must be at least 1ms (WAIT 0 would block forever) and below \
                     lock_timeout ({lock_timeout:?}), got {:?}",
                    self.timeout
                ),
            ));
        }
        Ok(())
    }

    /// Waits for the replicas after a write to `key`; `Ok` with the count
    /// when the grant stands (enough replicas, or the policy reports), the
    /// error otherwise. `bound` limits the call beyond `WAIT`'s own timeout.
    pub(crate) async fn confirm<B: RedisBackend>(
        &self,
        backend: &B,
        clock: &Clock,
        (kind, key, operation): (LockKind, &str, &'static str),
        bound: Duration,
    ) -> Result<ReplicaAcks, LockError> {
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let call = backend.wait_for_replicas(key, self.replicas, timeout_ms);
        let answer = bounded_call(clock, bound.saturating_add(self.timeout), call).await;
        let confirmed = match answer {
            Ok(n) => n,
            Err(_) if self.policy == ReplicaPolicy::Report => 0,
            Err(source) => {
                return Err(LockError::Backend {
                    kind,
                    key: key.to_owned(),
                    operation,
                    source,
                })
            }
        };
        let acks = ReplicaAcks {
            confirmed,
            wanted: self.replicas,
        };
        if acks.is_confirmed() || self.policy == ReplicaPolicy::Report {
            return Ok(acks);
        }
        Err(LockError::ReplicasNotConfirmed {
            kind,
            key: key.to_owned(),
            operation,
            acks,
        })
    }
}
