//! [`Mutex`]: one holder at a time, on one Redis.

use std::fmt;
use std::sync::Arc;

use crate::api::lock_methods;
use crate::backend::RedisBackend;
use crate::commands::MutexCommands;
use crate::error::LockError;
use crate::keys::{prefixed, MUTEX_PREFIX};
use crate::lock_core::LockCore;
use crate::options::LockOptions;
use crate::single::SingleNode;

/// A distributed mutex on one Redis server (or Redis Cluster).
///
/// Stored as redis-semaphore stores it: the string key `mutex:<key>` holds
/// the holder's identifier, with the lock timeout as TTL. Node services
/// using redis-semaphore and Rust services using redsem exclude each other.
///
/// A `Mutex` is a cheap-to-clone handle; every [`acquire`](Mutex::acquire)
/// contends in Redis (with a fresh identifier unless one was fixed), so
/// tasks may share one instance.
///
/// ```
/// use redsem_core::Mutex;
/// use redsem_mock::MockBackend;
///
/// # futures::executor::block_on(async {
/// let backend = MockBackend::new();
/// let mutex = Mutex::new(backend.clone(), "jobs")?;
///
/// let guard = mutex.acquire().await?;
/// assert_eq!(backend.get("mutex:jobs").as_deref(), Some(guard.identifier()));
/// // a second holder is refused while the first holds it
/// assert!(mutex.try_acquire().await?.is_none());
/// guard.release().await?;
/// assert_eq!(backend.get("mutex:jobs"), None);
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
pub struct Mutex<B> {
    core: Arc<LockCore<SingleNode<MutexCommands, B>>>,
}

impl<B: RedisBackend + 'static> Mutex<B> {
    /// A mutex on `key` (stored as `mutex:<key>`) with default options.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// let mutex = Mutex::new(MockBackend::new(), "jobs")?;
    /// assert_eq!(mutex.key(), "mutex:jobs");
    /// assert!(Mutex::new(MockBackend::new(), "").is_err());
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidOption`] if `key` is empty.
    pub fn new(backend: B, key: impl AsRef<str>) -> Result<Self, LockError> {
        Self::with_options(backend, key, LockOptions::default())
    }

    /// A mutex on `key` with `options`.
    ///
    /// ```
    /// # use redsem_core::{LockOptions, Mutex};
    /// # use redsem_mock::MockBackend;
    /// # use std::time::Duration;
    /// let options = LockOptions::builder().acquire_timeout(Duration::from_secs(1)).build()?;
    /// let mutex = Mutex::with_options(MockBackend::new(), "jobs", options)?;
    /// assert_eq!(mutex.options().acquire_timeout(), Duration::from_secs(1));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidOption`] if `key` is empty.
    pub fn with_options(
        backend: B,
        key: impl AsRef<str>,
        options: LockOptions,
    ) -> Result<Self, LockError> {
        let commands = MutexCommands::new(prefixed(MUTEX_PREFIX, key.as_ref())?)
            .fencing(options.fencing_tokens);
        Ok(Mutex {
            core: LockCore::new(SingleNode::new(commands, backend, &options), options),
        })
    }

    /// The backend this mutex runs on.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// let mutex = Mutex::new(redis.clone(), "jobs")?;
    /// assert!(mutex.backend().is_same_node(&redis));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn backend(&self) -> &B {
        &self.core.protocol.backend
    }
}

lock_methods!(
    Mutex,
    "redsem_core::Mutex::new(redis.clone(), \"jobs\")?",
    RedisBackend + 'static
);

/// Shows what the mutex is: its key and options, not its backend or
/// internal state (so `B` need not be `Debug`). A fixed identifier acts as
/// a credential for the hold, so only its first 4 characters are shown (none
/// of one shorter than 16).
///
/// ```
/// use redsem_core::{LockOptions, Mutex};
/// use redsem_mock::MockBackend;
///
/// let mutex = Mutex::new(MockBackend::new(), "jobs")?;
/// let shown = format!("{mutex:?}");
/// assert!(shown.starts_with(r#"Mutex { key: "mutex:jobs", options: LockOptions { lock_timeout: 10s,"#));
/// assert!(!shown.contains("MockBackend"));
///
/// let secret = "7d4e8f9a-handover-token";
/// let options = LockOptions::builder().identifier(secret).build()?;
/// let shown = format!("{:?}", Mutex::with_options(MockBackend::new(), "jobs", options)?);
/// assert!(shown.contains(r#"identity: Fixed("7d4e…")"#));
/// assert!(!shown.contains(secret));
/// # Ok::<(), redsem_core::LockError>(())
/// ```
impl<B> fmt::Debug for Mutex<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.core.protocol.commands.key;
        self.core.fmt_lock(f, "Mutex", key, &[])
    }
}
