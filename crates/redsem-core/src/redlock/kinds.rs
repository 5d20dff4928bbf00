//! The public Redlock lock types.

use std::fmt;
use std::sync::Arc;

use crate::api::lock_methods;
use crate::backend::RedisBackend;
use crate::commands::{MutexCommands, SemaphoreCommands};
use crate::error::{LockError, LockKind};
use crate::keys::{prefixed, MUTEX_PREFIX};
use crate::lock_core::LockCore;
use crate::options::LockOptions;
use crate::protocol::drift;
use crate::redlock::quorum::Redlock;
use crate::semaphore::semaphore_commands;

fn check(nodes: &[impl Sized], options: &LockOptions) -> Result<(), LockError> {
    if nodes.is_empty() {
        return Err(LockError::invalid(
            "nodes",
            "must contain at least one backend",
        ));
    }
    if drift(options.lock_timeout_ms) >= options.lock_timeout {
        return Err(LockError::invalid(
            "lock_timeout",
            format!(
                "must exceed Redlock's clock-drift allowance (1% + 2ms), got {:?}",
                options.lock_timeout
            ),
        ));
    }
    if options.synced_replicas.is_some() {
        return Err(LockError::invalid(
            "synced_replicas",
            "applies to single-node locks: Redlock's nodes are independent primaries whose \
             majority already survives the loss of a node; drop the option",
        ));
    }
    Ok(())
}

/// A mutex over several independent Redis nodes (the Redlock algorithm):
/// held while a quorum (`n / 2 + 1`) of nodes hold `mutex:<key>` for it.
///
/// Each node stores exactly what [`Mutex`](crate::Mutex) stores. The nodes
/// must be independent servers (not replicas of each other, not one server
/// twice); each backend counts as one vote. Mixed clients work through
/// `Arc<dyn RedisBackend>`.
///
/// ```
/// use redsem_core::RedlockMutex;
/// use redsem_mock::MockBackend;
///
/// # futures::executor::block_on(async {
/// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
/// nodes[2].go_down(); // one node down: 2 of 3 is still a quorum
/// let mutex = RedlockMutex::new(nodes.clone(), "jobs")?;
/// let guard = mutex.acquire().await?;
/// assert_eq!(nodes[0].get("mutex:jobs").as_deref(), Some(guard.identifier()));
/// guard.release().await?;
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
pub struct RedlockMutex<B> {
    core: Arc<LockCore<Redlock<MutexCommands, B>>>,
}

impl<B: RedisBackend + 'static> RedlockMutex<B> {
    /// A Redlock mutex on `key` over `nodes`, with default options.
    ///
    /// ```
    /// # use redsem_core::RedlockMutex;
    /// # use redsem_mock::MockBackend;
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let mutex = RedlockMutex::new(nodes, "jobs")?;
    /// assert!(RedlockMutex::<MockBackend>::new(vec![], "jobs").is_err()); // no nodes
    /// # drop(mutex);
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidOption`] if `nodes` is empty or `key` is empty.
    pub fn new(nodes: Vec<B>, key: impl AsRef<str>) -> Result<Self, LockError> {
        Self::with_options(nodes, key, LockOptions::default())
    }

    /// A Redlock mutex with `options`.
    ///
    /// ```
    /// # use redsem_core::{LockOptions, RedlockMutex};
    /// # use redsem_mock::MockBackend;
    /// # use std::time::Duration;
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let options = LockOptions::builder().lock_timeout(Duration::from_secs(30)).build()?;
    /// let mutex = RedlockMutex::with_options(nodes, "jobs", options)?;
    /// assert_eq!(mutex.options().lock_timeout(), Duration::from_secs(30));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and if the lock timeout does not exceed the
    /// clock-drift allowance.
    pub fn with_options(
        nodes: Vec<B>,
        key: impl AsRef<str>,
        options: LockOptions,
    ) -> Result<Self, LockError> {
        check(&nodes, &options)?;
        let commands = MutexCommands::new(prefixed(MUTEX_PREFIX, key.as_ref())?)
            .fencing(options.fencing_tokens);
        let protocol = Redlock::new(commands, nodes, LockKind::RedlockMutex);
        Ok(RedlockMutex {
            core: LockCore::new(protocol, options),
        })
    }

    /// The nodes, in the order given (node 1 is the first).
    ///
    /// ```
    /// # use redsem_core::RedlockMutex;
    /// # use redsem_mock::MockBackend;
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let mutex = RedlockMutex::new(nodes, "jobs")?;
    /// assert_eq!(mutex.nodes().len(), 3);
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn nodes(&self) -> &[B] {
        &self.core.protocol.nodes
    }
}

lock_methods!(
    RedlockMutex,
    "redsem_core::RedlockMutex::new(vec![redis.clone(), MockBackend::new(), MockBackend::new()], \"jobs\")?",
    RedisBackend + 'static
);

/// A counting semaphore over several independent Redis nodes (Redlock):
/// held while a quorum of nodes have this holder among at most `limit`.
///
/// Each node stores exactly what [`Semaphore`](crate::Semaphore) stores.
///
/// ```
/// use redsem_core::RedlockSemaphore;
/// use redsem_mock::MockBackend;
///
/// # futures::executor::block_on(async {
/// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
/// let pool = RedlockSemaphore::new(nodes.clone(), "pool", 2)?;
/// let a = pool.acquire().await?;
/// let b = pool.acquire().await?;
/// assert!(pool.try_acquire().await?.is_none()); // 2 of 2 taken
/// assert_eq!(nodes[0].zcard("semaphore:pool"), 2);
/// a.release().await?;
/// b.release().await?;
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
pub struct RedlockSemaphore<B> {
    core: Arc<LockCore<Redlock<SemaphoreCommands, B>>>,
}

impl<B: RedisBackend + 'static> RedlockSemaphore<B> {
    /// A Redlock semaphore on `key` allowing `limit` holders, default options.
    ///
    /// ```
    /// # use redsem_core::RedlockSemaphore;
    /// # use redsem_mock::MockBackend;
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let pool = RedlockSemaphore::new(nodes, "pool", 3)?;
    /// assert_eq!(pool.key(), "semaphore:pool");
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidOption`] if `nodes` or `key` is empty or `limit`
    /// is 0.
    pub fn new(nodes: Vec<B>, key: impl AsRef<str>, limit: u32) -> Result<Self, LockError> {
        Self::with_options(nodes, key, limit, LockOptions::default())
    }

    /// A Redlock semaphore with `options`.
    ///
    /// ```
    /// # use redsem_core::{LockOptions, RedlockSemaphore};
    /// # use redsem_mock::MockBackend;
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let options = LockOptions::builder().max_attempts(3).build()?;
    /// let pool = RedlockSemaphore::with_options(nodes, "pool", 3, options)?;
    /// assert_eq!(pool.options().max_attempts(), Some(3));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and if the lock timeout does not exceed the
    /// clock-drift allowance.
    pub fn with_options(
        nodes: Vec<B>,
        key: impl AsRef<str>,
        limit: u32,
        options: LockOptions,
    ) -> Result<Self, LockError> {
        check(&nodes, &options)?;
        let commands = semaphore_commands(key.as_ref(), limit, 0, &options)?;
        let protocol = Redlock::new(commands, nodes, LockKind::RedlockSemaphore);
        Ok(RedlockSemaphore {
            core: LockCore::new(protocol, options),
        })
    }

    /// The number of holders allowed.
    ///
    /// ```
    /// # use redsem_core::RedlockSemaphore;
    /// # use redsem_mock::MockBackend;
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// assert_eq!(RedlockSemaphore::new(nodes, "pool", 4)?.limit(), 4);
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn limit(&self) -> u32 {
        self.core.protocol.commands.limit
    }

    /// The nodes, in the order given.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let pool = redsem_core::RedlockSemaphore::new(nodes.clone(), "pool", 2)?;
    /// assert!(pool.nodes()[0].is_same_node(&nodes[0]));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn nodes(&self) -> &[B] {
        &self.core.protocol.nodes
    }
}

lock_methods!(
    RedlockSemaphore,
    "redsem_core::RedlockSemaphore::new(vec![redis.clone(), MockBackend::new(), MockBackend::new()], \"jobs\", 1)?",
    RedisBackend + 'static
);

/// A multi-permit semaphore over several independent Redis nodes (Redlock):
/// each holder takes `permits` of `limit` slots on a quorum of nodes.
///
/// Each node stores exactly what [`MultiSemaphore`](crate::MultiSemaphore)
/// stores.
///
/// ```
/// use redsem_core::RedlockMultiSemaphore;
/// use redsem_mock::MockBackend;
///
/// # futures::executor::block_on(async {
/// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
/// let gpu = RedlockMultiSemaphore::new(nodes.clone(), "gpu", 8, 5)?;
/// let guard = gpu.acquire().await?;
/// assert!(gpu.try_acquire().await?.is_none()); // 5 + 5 > 8
/// assert_eq!(nodes[1].zcard("semaphore:gpu"), 5);
/// guard.release().await?;
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
pub struct RedlockMultiSemaphore<B> {
    core: Arc<LockCore<Redlock<SemaphoreCommands, B>>>,
}

impl<B: RedisBackend + 'static> RedlockMultiSemaphore<B> {
    /// A Redlock multi-semaphore where each holder takes `permits` of
    /// `limit` slots, default options.
    ///
    /// ```
    /// # use redsem_core::RedlockMultiSemaphore;
    /// # use redsem_mock::MockBackend;
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let gpu = RedlockMultiSemaphore::new(nodes, "gpu", 8, 3)?;
    /// assert_eq!(gpu.key(), "semaphore:gpu");
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidOption`] if `nodes` or `key` is empty, `limit` or
    /// `permits` is 0, or `permits` exceeds `limit`.
    pub fn new(
        nodes: Vec<B>,
        key: impl AsRef<str>,
        limit: u32,
        permits: u32,
    ) -> Result<Self, LockError> {
        Self::with_options(nodes, key, limit, permits, LockOptions::default())
    }

    /// A Redlock multi-semaphore with `options`.
    ///
    /// ```
    /// # use redsem_core::{LockOptions, RedlockMultiSemaphore};
    /// # use redsem_mock::MockBackend;
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let options = LockOptions::builder().max_attempts(3).build()?;
    /// let gpu = RedlockMultiSemaphore::with_options(nodes, "gpu", 8, 3, options)?;
    /// assert_eq!(gpu.permits(), 3);
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and if the lock timeout does not exceed the
    /// clock-drift allowance.
    pub fn with_options(
        nodes: Vec<B>,
        key: impl AsRef<str>,
        limit: u32,
        permits: u32,
        options: LockOptions,
    ) -> Result<Self, LockError> {
        check(&nodes, &options)?;
        if permits == 0 {
            return Err(LockError::invalid("permits", "must be at least 1"));
        }
        let commands = semaphore_commands(key.as_ref(), limit, permits, &options)?;
        let protocol = Redlock::new(commands, nodes, LockKind::RedlockMultiSemaphore);
        Ok(RedlockMultiSemaphore {
            core: LockCore::new(protocol, options),
        })
    }

    /// The number of slots.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let gpu = redsem_core::RedlockMultiSemaphore::new(nodes, "gpu", 8, 3)?;
    /// assert_eq!(gpu.limit(), 8);
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn limit(&self) -> u32 {
        self.core.protocol.commands.limit
    }

    /// The slots each holder takes.
    ///
    /// ```
    /// # use redsem_core::RedlockMultiSemaphore;
    /// # use redsem_mock::MockBackend;
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let gpu = RedlockMultiSemaphore::new(nodes, "gpu", 8, 3)?;
    /// assert_eq!((gpu.limit(), gpu.permits()), (8, 3));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn permits(&self) -> u32 {
        self.core.protocol.commands.permits
    }

    /// The nodes, in the order given.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let gpu = redsem_core::RedlockMultiSemaphore::new(nodes.clone(), "gpu", 8, 3)?;
    /// assert_eq!(gpu.nodes().len(), 3);
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn nodes(&self) -> &[B] {
        &self.core.protocol.nodes
    }
}

lock_methods!(
    RedlockMultiSemaphore,
    "redsem_core::RedlockMultiSemaphore::new(vec![redis.clone(), MockBackend::new(), MockBackend::new()], \"jobs\", 4, 3)?",
    RedisBackend + 'static
);

/// `Debug` for a Redlock kind: its key, then the commands' `fields` (limit,
/// permits), the number of nodes and the options (see `LockCore::fmt_lock`).
macro_rules! redlock_debug {
    ($(#[$doc:meta])* $ty:ident { $($field:ident),* }) => {
        $(#[$doc])*
        impl<B> fmt::Debug for $ty<B> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let p = &self.core.protocol;
                let shape: &[(&str, &dyn fmt::Debug)] = &[
                    $((stringify!($field), &p.commands.$field),)*
                    ("nodes", &p.nodes.len()),
                ];
                self.core.fmt_lock(f, stringify!($ty), &p.commands.key, shape)
            }
        }
    };
}

redlock_debug!(
    /// Shows what the Redlock mutex is: its key, the number of nodes and the
    /// options, not the nodes themselves or internal state (so `B` need not
    /// be `Debug`), nor a fixed identifier whole.
    ///
    /// ```
    /// use redsem_core::RedlockMutex;
    /// use redsem_mock::MockBackend;
    ///
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let mutex = RedlockMutex::new(nodes, "migrations")?;
    /// let shown = format!("{mutex:?}");
    /// assert!(shown.starts_with(
    ///     r#"RedlockMutex { key: "mutex:migrations", nodes: 3, options: LockOptions {"#
    /// ));
    /// assert!(!shown.contains("MockBackend"));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    RedlockMutex {}
);

redlock_debug!(
    /// Shows what the Redlock semaphore is: its key, limit, number of nodes
    /// and options, not the nodes themselves or internal state (so `B` need
    /// not be `Debug`), nor a fixed identifier whole.
    ///
    /// ```
    /// use redsem_core::RedlockSemaphore;
    /// use redsem_mock::MockBackend;
    ///
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let pool = RedlockSemaphore::new(nodes, "api", 5)?;
    /// let shown = format!("{pool:?}");
    /// assert!(shown.starts_with(
    ///     r#"RedlockSemaphore { key: "semaphore:api", limit: 5, nodes: 3, options: LockOptions {"#
    /// ));
    /// assert!(!shown.contains("MockBackend"));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    RedlockSemaphore { limit }
);

redlock_debug!(
    /// Shows what the Redlock multi-semaphore is: its key, limit, permits,
    /// number of nodes and options, not the nodes themselves or internal
    /// state (so `B` need not be `Debug`), nor a fixed identifier whole.
    ///
    /// ```
    /// use redsem_core::{LockOptions, RedlockMultiSemaphore};
    /// use redsem_mock::MockBackend;
    ///
    /// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    /// let secret = "0f6c1e7a-5b3d-4c1e-9a2b-7d4e8f9a1b2c";
    /// let options = LockOptions::builder().identifier(secret).build()?;
    /// let gpu = RedlockMultiSemaphore::with_options(nodes, "gpu", 8, 2, options)?;
    /// let shown = format!("{gpu:?}");
    /// assert!(shown.starts_with(
    ///     r#"RedlockMultiSemaphore { key: "semaphore:gpu", limit: 8, permits: 2, nodes: 3, options: LockOptions {"#
    /// ));
    /// assert!(shown.contains(r#"identity: Fixed("0f6c…")"#) && !shown.contains(secret));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    RedlockMultiSemaphore { limit, permits }
);
