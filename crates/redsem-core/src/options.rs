//! [`LockOptions`]: timeouts, retries, refresh and identity, shared by every
//! lock kind. Defaults equal redis-semaphore's.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::LockError;
use crate::replicas::ReplicaSync;

/// Largest accepted lock timeout, in milliseconds (2^62 ms, about 146
/// million years): larger values would overflow Redis' expiry arithmetic.
const MAX_LOCK_TIMEOUT_MS: u128 = 1 << 62;

/// The callback type of [`LockOptionsBuilder::on_lock_lost`].
pub type LostCallback = Arc<dyn Fn(&LockError) + Send + Sync + 'static>;

/// How a lock names its holder in Redis.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// A fresh UUID v4 for every acquisition, optionally `<uuid>-<suffix>`.
    Random { suffix: Option<String> },
    /// One identifier for every acquisition of this lock instance.
    Fixed(String),
}

/// A fixed identifier is a bearer token for its hold: `Debug` shows only
/// its first characters, and none of a short one.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Random { suffix } => {
                f.debug_struct("Random").field("suffix", suffix).finish()
            }
            Identity::Fixed(id) => f.debug_tuple("Fixed").field(&Redacted(id)).finish(),
        }
    }
}

/// `Debug` of an identifier that must not be printed whole: `"0f6c…"`.
pub(crate) struct Redacted<'a>(pub(crate) &'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 4 of at least 16 characters leave a guess of 12 or more.
        const SHOWN: usize = 4;
        const MIN_LEN: usize = 16;
        let prefix: String = if self.0.chars().count() >= MIN_LEN {
            self.0.chars().take(SHOWN).collect()
        } else {
            String::new()
        };
        write!(f, "{:?}", format!("{prefix}…"))
    }
}

impl Identity {
    /// The identifier for a new acquisition.
    pub(crate) fn make(&self) -> String {
        match self {
            Identity::Fixed(id) => id.clone(),
            Identity::Random { suffix: None } => random_uuid().to_string(),
            Identity::Random { suffix: Some(s) } => format!("{}-{s}", random_uuid()),
        }
    }
}

/// A random UUID v4 without a system call for its randomness: 128 bits
/// from the OS seed a per-thread generator, and each identifier is SipHash
/// of (seed, counter). Asking the OS for every identifier cost about a
/// fifth of redsem's own time per acquire. The seed is redrawn in a child
/// after `fork()`, which would otherwise repeat the parent's identifiers.
fn random_uuid() -> uuid::Uuid {
    use std::cell::Cell;
    use std::hash::{DefaultHasher, Hasher};

    /// (process id at seeding, seed, identifiers made since)
    type State = (u32, u64, u64, u64);
    thread_local! {
        static GENERATOR: Cell<Option<State>> = const { Cell::new(None) };
    }
    let pid = std::process::id();
    GENERATOR.with(|generator| {
        let (seeded_in, a, b, n) = match generator.get() {
            Some(state) if state.0 == pid => state,
            _ => {
                let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
                (pid, a, b, 0)
            }
        };
        generator.set(Some((seeded_in, a, b, n.wrapping_add(1))));
        let half = |which: u64| {
            let mut h = DefaultHasher::new();
            h.write_u64(a);
            h.write_u64(b);
            h.write_u64(n);
            h.write_u64(which);
            h.finish()
        };
        let bits = (u128::from(half(0)) << 64) | u128::from(half(1));
        uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
    })
}

/// Validated options for any lock kind. Build with [`LockOptions::builder`];
/// [`LockOptions::default()`] gives redis-semaphore's defaults, except that
/// a hold is refreshed every third of its lock timeout (redis-semaphore:
/// 0.8) so that it survives an outage of half the lock timeout.
///
/// ```
/// use std::time::Duration;
/// use redsem_core::LockOptions;
///
/// let options = LockOptions::builder()
///     .lock_timeout(Duration::from_secs(30))
///     .acquire_timeout(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(options.refresh_interval(), Some(Duration::from_secs(10)));
///
/// // Invalid combinations are errors that say what to change:
/// let err = LockOptions::builder()
///     .lock_timeout(Duration::from_secs(1))
///     .refresh_interval(Duration::from_secs(2))
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("refresh_interval"));
/// # Ok::<(), redsem_core::LockError>(())
/// ```
#[derive(Clone)]
pub struct LockOptions {
    pub(crate) lock_timeout: Duration,
    pub(crate) lock_timeout_ms: u64,
    pub(crate) acquire_timeout: Duration,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) retry_interval: Duration,
    pub(crate) refresh_interval: Option<Duration>,
    pub(crate) command_timeout: Duration,
    pub(crate) identity: Identity,
    pub(crate) acquired_externally: bool,
    pub(crate) on_lock_lost: Option<LostCallback>,
    pub(crate) synced_replicas: Option<ReplicaSync>,
    pub(crate) fencing_tokens: bool,
}

impl LockOptions {
    /// A builder starting from the defaults.
    ///
    /// ```
    /// use redsem_core::LockOptions;
    /// let options = LockOptions::builder().identifier_suffix("billing").build()?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn builder() -> LockOptionsBuilder {
        LockOptionsBuilder::default()
    }

    /// How long a hold lives in Redis without a refresh (default 10 s).
    ///
    /// ```
    /// # use redsem_core::LockOptions;
    /// # use std::time::Duration;
    /// assert_eq!(LockOptions::default().lock_timeout(), Duration::from_secs(10));
    /// ```
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    /// How long `acquire` keeps trying (default 10 s; `Duration::MAX` means
    /// forever).
    ///
    /// ```
    /// # use redsem_core::LockOptions;
    /// # use std::time::Duration;
    /// assert_eq!(LockOptions::default().acquire_timeout(), Duration::from_secs(10));
    /// ```
    pub fn acquire_timeout(&self) -> Duration {
        self.acquire_timeout
    }

    /// The attempt limit of `acquire`, `None` when unlimited (the default).
    ///
    /// ```
    /// # use redsem_core::LockOptions;
    /// assert_eq!(LockOptions::default().max_attempts(), None);
    /// ```
    pub fn max_attempts(&self) -> Option<u32> {
        self.max_attempts
    }

    /// The pause between acquire attempts (default 10 ms).
    ///
    /// ```
    /// # use redsem_core::LockOptions;
    /// # use std::time::Duration;
    /// assert_eq!(LockOptions::default().retry_interval(), Duration::from_millis(10));
    /// ```
    pub fn retry_interval(&self) -> Duration {
        self.retry_interval
    }

    /// How often a held lock is refreshed; `None` when refresh is off.
    ///
    /// ```
    /// # use redsem_core::LockOptions;
    /// # use std::time::Duration;
    /// // a third of the lock timeout by default
    /// let options = LockOptions::builder().lock_timeout(Duration::from_secs(3)).build()?;
    /// assert_eq!(options.refresh_interval(), Some(Duration::from_secs(1)));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn refresh_interval(&self) -> Option<Duration> {
        self.refresh_interval
    }

    /// The bound on each call to Redis (default: a fifth of the lock timeout).
    ///
    /// ```
    /// # use redsem_core::LockOptions;
    /// # use std::time::Duration;
    /// assert_eq!(LockOptions::default().command_timeout(), Duration::from_secs(2));
    /// ```
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// The fixed identifier, if one was set.
    ///
    /// ```
    /// # use redsem_core::LockOptions;
    /// assert_eq!(LockOptions::default().identifier(), None);
    /// ```
    pub fn identifier(&self) -> Option<&str> {
        match &self.identity {
            Identity::Fixed(id) => Some(id),
            Identity::Random { .. } => None,
        }
    }

    /// Whether the first acquire takes over a hold made elsewhere under the
    /// fixed identifier.
    ///
    /// ```
    /// # use redsem_core::LockOptions;
    /// assert!(!LockOptions::default().acquired_externally());
    /// ```
    pub fn acquired_externally(&self) -> bool {
        self.acquired_externally
    }

    /// Whether acquires and refreshes wait for replicas (default `None`).
    ///
    /// ```
    /// # use redsem_core::LockOptions;
    /// assert_eq!(LockOptions::default().synced_replicas(), None);
    /// ```
    pub fn synced_replicas(&self) -> Option<ReplicaSync> {
        self.synced_replicas
    }

    /// Whether acquisitions take fencing tokens (default `true`).
    ///
    /// ```
    /// # use redsem_core::LockOptions;
    /// assert!(LockOptions::default().fencing_tokens());
    /// ```
    pub fn fencing_tokens(&self) -> bool {
        self.fencing_tokens
    }
}

impl Default for LockOptions {
    fn default() -> Self {
        let lock_timeout = Duration::from_secs(10);
        LockOptions {
            lock_timeout,
            lock_timeout_ms: 10_000,
            acquire_timeout: Duration::from_secs(10),
            max_attempts: None,
            retry_interval: Duration::from_millis(10),
            refresh_interval: Some(default_refresh(lock_timeout)),
            command_timeout: default_command_timeout(lock_timeout),
            identity: Identity::Random { suffix: None },
            acquired_externally: false,
            on_lock_lost: None,
            synced_replicas: None,
            fencing_tokens: true,
        }
    }
}

impl fmt::Debug for LockOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockOptions")
            .field("lock_timeout", &self.lock_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("retry_interval", &self.retry_interval)
            .field("refresh_interval", &self.refresh_interval)
            .field("command_timeout", &self.command_timeout)
            .field("identity", &self.identity)
            .field("acquired_externally", &self.acquired_externally)
            .field("on_lock_lost", &self.on_lock_lost.as_ref().map(|_| "Fn"))
            .field("synced_replicas", &self.synced_replicas)
            .field("fencing_tokens", &self.fencing_tokens)
            .finish()
    }
}

/// A third of the lock timeout (redis-semaphore refreshes at 0.8): a
/// refresh that fails is retried, and with a third there is room for an
/// outage of half the lock timeout, plus the retries, before the hold
/// expires.
fn default_refresh(lock_timeout: Duration) -> Duration {
    lock_timeout / 3
}

fn default_command_timeout(lock_timeout: Duration) -> Duration {
    lock_timeout / 5
}

/// Builds [`LockOptions`]; [`build`](LockOptionsBuilder::build) checks them.
/// Get one from [`LockOptions::builder`]; unset options keep their defaults.
///
/// ```
/// use redsem_core::{LockOptions, Mutex};
/// use redsem_mock::MockBackend;
/// use std::time::Duration;
///
/// let options = LockOptions::builder()
///     .lock_timeout(Duration::from_secs(30))
///     .max_attempts(5)
///     .build()?;
/// let mutex = Mutex::with_options(MockBackend::new(), "jobs", options)?;
/// assert_eq!(mutex.options().lock_timeout(), Duration::from_secs(30));
/// # Ok::<(), redsem_core::LockError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
#[derive(Clone, Default)]
pub struct LockOptionsBuilder {
    lock_timeout: Option<Duration>,
    acquire_timeout: Option<Duration>,
    max_attempts: Option<u32>,
    retry_interval: Option<Duration>,
    refresh_interval: Option<Duration>,
    command_timeout: Option<Duration>,
    identifier: Option<String>,
    identifier_suffix: Option<String>,
    acquired_externally: bool,
    on_lock_lost: Option<LostCallback>,
    synced_replicas: Option<ReplicaSync>,
    fencing_tokens: Option<bool>,
}

impl fmt::Debug for LockOptionsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockOptionsBuilder")
            .field("lock_timeout", &self.lock_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("retry_interval", &self.retry_interval)
            .field("refresh_interval", &self.refresh_interval)
            .field("command_timeout", &self.command_timeout)
            .field("identifier", &self.identifier.as_deref().map(Redacted))
            .field("identifier_suffix", &self.identifier_suffix)
            .field("acquired_externally", &self.acquired_externally)
            .field("synced_replicas", &self.synced_replicas)
            .field("fencing_tokens", &self.fencing_tokens)
            .finish_non_exhaustive()
    }
}

impl LockOptionsBuilder {
    /// How long a hold lives in Redis without a refresh; at least 1 ms,
    /// counted in whole milliseconds. Default 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use redsem_core::LockOptions;
    /// let options = LockOptions::builder().lock_timeout(Duration::from_secs(30)).build()?;
    /// assert_eq!(options.lock_timeout(), Duration::from_secs(30));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// How long `acquire` keeps trying before it returns
    /// [`LockError::Timeout`]. `Duration::ZERO` makes exactly one attempt;
    /// `Duration::MAX` waits forever. Default 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use redsem_core::LockOptions;
    /// // one attempt, no waiting
    /// let options = LockOptions::builder().acquire_timeout(Duration::ZERO).build()?;
    /// assert_eq!(options.acquire_timeout(), Duration::ZERO);
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = Some(timeout);
        self
    }

    /// At most `attempts` tries per `acquire` (at least 1). Default: no
    /// limit besides the acquire timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use redsem_core::LockOptions;
    /// let options = LockOptions::builder().max_attempts(3).build()?;
    /// assert_eq!(options.max_attempts(), Some(3));
    /// assert!(LockOptions::builder().max_attempts(0).build().is_err());
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// The base pause between acquire attempts, at least 1 ms. Default 10 ms.
    ///
    /// After a busy answer the pause is this interval times a random factor
    /// in [0.5, 1.5), so contenders do not retry in lockstep. After the
    /// *k*-th failed attempt in a row (Redis unreachable or unavailable) it
    /// is `min(interval × 2^(k-1), max(interval, 1 s))` times a random
    /// factor in [0.5, 1.0]: about 6 attempts in the first second of an
    /// outage, then one or two a second.
    ///
    /// ```
    /// use std::time::Duration;
    /// use redsem_core::LockOptions;
    /// let options = LockOptions::builder().retry_interval(Duration::from_millis(50)).build()?;
    /// assert_eq!(options.retry_interval(), Duration::from_millis(50));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = Some(interval);
        self
    }

    /// How often a held lock is refreshed; must be below the lock timeout.
    /// `Duration::ZERO` turns refresh off: the hold then expires after the
    /// lock timeout. Default: a third of the lock timeout (redis-semaphore
    /// uses 0.8). A refresh that fails is retried with backoff (from
    /// `retry_interval`, doubling, at most a twentieth of the lock timeout)
    /// until the hold's validity runs out.
    ///
    /// ```
    /// use std::time::Duration;
    /// use redsem_core::LockOptions;
    /// // no refresh: the hold expires after the lock timeout
    /// let options = LockOptions::builder().refresh_interval(Duration::ZERO).build()?;
    /// assert_eq!(options.refresh_interval(), None);
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = Some(interval);
        self
    }

    /// The bound on each call to Redis; a call that takes longer counts as
    /// failed (it may still have run). Must be below the lock timeout.
    /// Default: a fifth of the lock timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use redsem_core::LockOptions;
    /// let options = LockOptions::builder().command_timeout(Duration::from_millis(500)).build()?;
    /// assert_eq!(options.command_timeout(), Duration::from_millis(500));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = Some(timeout);
        self
    }

    /// Use this identifier for every acquisition instead of a fresh random
    /// UUID v4. One lock instance with a fixed identifier holds at most one
    /// guard at a time. Needed to share a hold across processes (see
    /// [`acquired_externally`](Self::acquired_externally)).
    ///
    /// ```
    /// use redsem_core::LockOptions;
    /// let options = LockOptions::builder().identifier("worker-7").build()?;
    /// assert_eq!(options.identifier(), Some("worker-7"));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn identifier(mut self, identifier: impl Into<String>) -> Self {
        self.identifier = Some(identifier.into());
        self
    }

    /// Random identifiers become `<uuid>-<suffix>`, for example to see which
    /// service holds a lock.
    ///
    /// ```
    /// # use redsem_core::{LockOptions, Mutex};
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let options = LockOptions::builder().identifier_suffix("billing").build()?;
    /// let guard = Mutex::with_options(MockBackend::new(), "jobs", options)?.acquire().await?;
    /// assert!(guard.identifier().ends_with("-billing"));
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn identifier_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.identifier_suffix = Some(suffix.into());
        self
    }

    /// The first acquire takes over a hold that another process made under
    /// the same fixed [`identifier`](Self::identifier): it makes one refresh
    /// call with this lock's timeout instead of acquiring, and fails if the
    /// hold is gone. Later acquires are normal.
    ///
    /// ```
    /// # use redsem_core::{LockOptions, Mutex};
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let redis = MockBackend::new();
    /// // another process acquired "mutex:jobs" as "job-42" and passed the identifier on
    /// let first = LockOptions::builder().identifier("job-42").build()?;
    /// Mutex::with_options(redis.clone(), "jobs", first)?.acquire().await?.detach();
    /// let options = LockOptions::builder().identifier("job-42").acquired_externally(true).build()?;
    /// let guard = Mutex::with_options(redis, "jobs", options)?.acquire().await?;
    /// guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn acquired_externally(mut self, yes: bool) -> Self {
        self.acquired_externally = yes;
        self
    }

    /// Called once when a held lock is lost, whichever way the loss is found
    /// (a refresh, the expiry, or a release that finds the hold gone).
    ///
    /// Callbacks run one at a time on a thread of redsem's own, never on
    /// the thread that refreshes locks and never under a lock's internal
    /// locks, so a callback that blocks delays only the callbacks after it.
    /// A panic in it is caught.
    ///
    /// ```
    /// # use redsem_core::{LockOptions, Mutex};
    /// # use redsem_mock::MockBackend;
    /// let options = LockOptions::builder()
    ///     .on_lock_lost(|e| eprintln!("stop the work: {e}"))
    ///     .build()?;
    /// let mutex = Mutex::with_options(MockBackend::new(), "jobs", options)?;
    /// # drop(mutex);
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn on_lock_lost(mut self, callback: impl Fn(&LockError) + Send + Sync + 'static) -> Self {
        self.on_lock_lost = Some(Arc::new(callback));
        self
    }

    /// Confirm every acquire and refresh on replicas before it counts
    /// (single-node kinds; Redlock refuses it: its nodes are independent
    /// primaries). See [`ReplicaSync`] for the cost and the guarantee.
    ///
    /// ```
    /// use redsem_core::{LockOptions, ReplicaSync};
    /// let options = LockOptions::builder().synced_replicas(ReplicaSync::new(1)).build()?;
    /// assert_eq!(options.synced_replicas().map(|s| s.replicas()), Some(1));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn synced_replicas(mut self, sync: ReplicaSync) -> Self {
        self.synced_replicas = Some(sync);
        self
    }

    /// Whether acquisitions take fencing tokens (default `true`). Tokens
    /// cost a counter key per lock key that never expires (about 60 bytes
    /// each in Redis) and, on a mutex, a script instead of a plain `SET NX
    /// PX` (measured with `redis-benchmark -c 50` on fresh keys: 79,000
    /// fenced acquires/s against 127,000 plain ones). With `false`, a mutex
    /// acquire is one `SET NX PX`, no counter is kept, and
    /// [`fencing_token`](crate::LockGuard::fencing_token) is 0.
    ///
    /// ```
    /// use redsem_core::{LockOptions, Mutex, RedisBackend};
    /// use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let redis = MockBackend::new();
    /// let options = LockOptions::builder().fencing_tokens(false).build()?;
    /// let guard = Mutex::with_options(redis.clone(), "jobs", options)?.acquire().await?;
    /// assert_eq!(guard.fencing_token(), 0);
    /// assert!(!redis.exists("{mutex:jobs}:fence")); // no counter
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn fencing_tokens(mut self, on: bool) -> Self {
        self.fencing_tokens = Some(on);
        self
    }

    /// Checks the options.
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidOption`] naming the option and what to change.
    ///
    /// ```
    /// use std::time::Duration;
    /// use redsem_core::LockOptions;
    /// let err = LockOptions::builder().lock_timeout(Duration::ZERO).build().unwrap_err();
    /// assert!(err.to_string().contains("lock_timeout"), "{err}");
    ///
    /// ```
    pub fn build(self) -> Result<LockOptions, LockError> {
        let defaults = LockOptions::default();
        let lock_timeout = self.lock_timeout.unwrap_or(defaults.lock_timeout);
        let ms = lock_timeout.as_millis();
        if ms < 1 {
            return Err(LockError::invalid(
                "lock_timeout",
                format!("must be at least 1ms, got {lock_timeout:?}"),
            ));
        }
        if ms > MAX_LOCK_TIMEOUT_MS {
            return Err(LockError::invalid(
                "lock_timeout",
                format!("must be at most 2^62 ms, got {lock_timeout:?}"),
            ));
        }
        let lock_timeout_ms = ms as u64;
        let lock_timeout = Duration::from_millis(lock_timeout_ms);

        let refresh_interval = match self.refresh_interval {
            None => Some(default_refresh(lock_timeout)),
            Some(d) if d.is_zero() => None,
            Some(d) if d >= lock_timeout => {
                return Err(LockError::invalid(
                    "refresh_interval",
                    format!(
                        "must be below lock_timeout ({lock_timeout:?}) so the lock is refreshed \
                         before it expires, got {d:?}; use Duration::ZERO to turn refresh off"
                    ),
                ))
            }
            Some(d) => Some(d),
        };

        if self.max_attempts == Some(0) {
            return Err(LockError::invalid(
                "max_attempts",
                "must be at least 1 (1 means a single try)",
            ));
        }

        let command_timeout = self
            .command_timeout
            .unwrap_or(default_command_timeout(lock_timeout));
        if command_timeout.is_zero() {
            return Err(LockError::invalid("command_timeout", "must be above zero"));
        }
        if command_timeout >= lock_timeout {
            return Err(LockError::invalid(
                "command_timeout",
                format!(
                    "must be below lock_timeout ({lock_timeout:?}): a call may not outlive the \
                     hold it confirms, got {command_timeout:?}"
                ),
            ));
        }
        let retry_interval = self.retry_interval.unwrap_or(defaults.retry_interval);
        if retry_interval < Duration::from_millis(1) {
            return Err(LockError::invalid(
                "retry_interval",
                format!("must be at least 1ms, got {retry_interval:?}"),
            ));
        }

        let identity = match (self.identifier, self.identifier_suffix) {
            (Some(id), _) if id.is_empty() => {
                return Err(LockError::invalid(
                    "identifier",
                    "must not be empty; omit it to get a random UUID per acquisition",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(LockError::invalid(
                    "identifier_suffix",
                    "has no effect with a fixed identifier; set only one of them",
                ))
            }
            (Some(id), None) => Identity::Fixed(id),
            (None, suffix) => Identity::Random { suffix },
        };
        if self.acquired_externally && !matches!(identity, Identity::Fixed(_)) {
            return Err(LockError::invalid(
                "acquired_externally",
                "needs the identifier of the existing hold: set .identifier(..) as well",
            ));
        }

        if let Some(sync) = &self.synced_replicas {
            sync.check(lock_timeout)?;
        }

        Ok(LockOptions {
            lock_timeout,
            lock_timeout_ms,
            acquire_timeout: self.acquire_timeout.unwrap_or(defaults.acquire_timeout),
            max_attempts: self.max_attempts,
            retry_interval,
            refresh_interval,
            command_timeout,
            identity,
            acquired_externally: self.acquired_externally,
            on_lock_lost: self.on_lock_lost,
            synced_replicas: self.synced_replicas,
            fencing_tokens: self.fencing_tokens.unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(builder: LockOptionsBuilder) -> String {
        match builder.build() {
            Ok(o) => panic!("expected an error, got {o:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn random_identifiers_are_distinct_uuid_v4s_across_threads() {
        let make = || {
            let identity = Identity::Random { suffix: None };
            (0..2000).map(|_| identity.make()).collect::<Vec<_>>()
        };
        let other = std::thread::spawn(make);
        let mut ids = make();
        ids.extend(other.join().unwrap_or_default());
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).map(|u| u.get_version_num());
            assert_eq!(parsed, Ok(4), "{id}");
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count);
        assert_eq!(count, 4000);
    }

    #[test]
    fn defaults_match_redis_semaphore_but_refresh() {
        let o = LockOptions::default();
        assert_eq!(o.lock_timeout(), Duration::from_secs(10));
        assert_eq!(o.acquire_timeout(), Duration::from_secs(10));
        assert_eq!(o.max_attempts(), None);
        assert_eq!(o.retry_interval(), Duration::from_millis(10));
        assert_eq!(o.refresh_interval(), Some(Duration::from_secs(10) / 3));
        assert_eq!(o.identifier(), None);
        let built = LockOptions::builder().build().map_err(|e| e.to_string());
        assert_eq!(format!("{:?}", built.ok()), format!("{:?}", Some(o)));
    }

    #[test]
    fn refresh_defaults_to_four_fifths_of_the_given_lock_timeout() {
        let o = LockOptions::builder()
            .lock_timeout(Duration::from_millis(300))
            .build();
        assert_eq!(
            o.ok().and_then(|o| o.refresh_interval()),
            Some(Duration::from_millis(100))
        );
    }

    #[test]
    fn zero_refresh_turns_refresh_off() {
        let o = LockOptions::builder()
            .refresh_interval(Duration::ZERO)
            .build();
        assert_eq!(o.ok().map(|o| o.refresh_interval()), Some(None));
    }

    #[test]
    fn bad_options_are_named() {
        assert!(
            err(LockOptions::builder().lock_timeout(Duration::from_micros(999)))
                .contains("invalid lock_timeout: must be at least 1ms")
        );
        assert!(err(LockOptions::builder()
            .lock_timeout(Duration::from_millis(100))
            .refresh_interval(Duration::from_millis(100)))
        .contains("invalid refresh_interval: must be below lock_timeout (100ms)"));
        assert!(err(LockOptions::builder().identifier("")).contains("invalid identifier"));
        assert!(err(LockOptions::builder().acquired_externally(true))
            .contains("invalid acquired_externally"));
        assert!(err(LockOptions::builder().max_attempts(0)).contains("invalid max_attempts"));
        assert!(err(LockOptions::builder().command_timeout(Duration::ZERO))
            .contains("invalid command_timeout"));
        assert!(
            err(LockOptions::builder().command_timeout(Duration::from_secs(10)))
                .contains("invalid command_timeout: must be below lock_timeout (10s)")
        );
        assert!(
            err(LockOptions::builder().retry_interval(Duration::from_micros(999)))
                .contains("invalid retry_interval: must be at least 1ms")
        );
        assert!(err(LockOptions::builder()
            .identifier("a")
            .identifier_suffix("b"))
        .contains("invalid identifier_suffix"));
    }

    #[test]
    fn debug_never_shows_a_fixed_identifier() {
        let secret = "0f6c1e7a-5b3d-4c1e-9a2b-7d4e8f9a1b2c";
        let builder = LockOptions::builder().identifier(secret);
        let shown_builder = format!("{builder:?}");
        let options = builder.build();
        let shown = format!("{options:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains(r#"identity: Fixed("0f6c…")"#), "{shown}");
        assert!(!shown_builder.contains(secret), "{shown_builder}");
        assert!(
            shown_builder.contains(r#"identifier: Some("0f6c…")"#),
            "{shown_builder}"
        );
        // A short one would be mostly prefix: none of it is shown.
        let short = format!(
            "{:?}",
            LockOptions::builder().identifier("worker-7").build()
        );
        assert!(
            !short.contains("work") && short.contains(r#"Fixed("…")"#),
            "{short}"
        );
        // Random identities have nothing secret before the acquire.
        let random = format!("{:?}", LockOptions::default());
        assert!(
            random.contains("identity: Random { suffix: None }"),
            "{random}"
        );
    }

    #[test]
    fn identities() {
        let random = Identity::Random { suffix: None }.make();
        assert_eq!(random.len(), 36);
        assert_eq!(
            uuid::Uuid::parse_str(&random)
                .map(|u| u.get_version_num())
                .ok(),
            Some(4)
        );
        let suffixed = Identity::Random {
            suffix: Some("abc".into()),
        }
        .make();
        assert!(suffixed.ends_with("-abc") && suffixed.len() == 40);
        assert_eq!(Identity::Fixed("x".into()).make(), "x");
    }
}
