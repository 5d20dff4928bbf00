//! [`Semaphore`] (up to `limit` holders) and [`MultiSemaphore`] (holders
//! taking several permits at once), sharing one sorted set per key.

use std::fmt;
use std::sync::Arc;

use crate::api::lock_methods;
use crate::backend::RedisBackend;
use crate::commands::SemaphoreCommands;
use crate::error::LockError;
use crate::keys::{prefixed, SEMAPHORE_PREFIX};
use crate::lock_core::LockCore;
use crate::options::{Identity, LockOptions};
use crate::single::SingleNode;

/// A distributed counting semaphore: at most `limit` holders at a time.
///
/// Stored as redis-semaphore stores it: the sorted set `semaphore:<key>` has
/// one member per holder (its identifier) scored by acquire time in epoch
/// milliseconds. Scores come from the Redis server's clock, so client clock
/// skew cannot let an extra holder in. A [`MultiSemaphore`] on the same key
/// counts in the same set.
///
/// ```
/// use redsem_core::Semaphore;
/// use redsem_mock::MockBackend;
///
/// # futures::executor::block_on(async {
/// let backend = MockBackend::new();
/// let pool = Semaphore::new(backend.clone(), "api", 2)?;
/// let a = pool.acquire().await?;
/// let b = pool.acquire().await?;
/// assert!(pool.try_acquire().await?.is_none()); // the limit is 2
/// assert_eq!(backend.zcard("semaphore:api"), 2);
/// a.release().await?;
/// b.release().await?;
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
pub struct Semaphore<B> {
    core: Arc<LockCore<SingleNode<SemaphoreCommands, B>>>,
}

impl<B: RedisBackend + 'static> Semaphore<B> {
    /// A semaphore on `key` (stored as `semaphore:<key>`) allowing `limit`
    /// holders, with default options.
    ///
    /// ```
    /// # use redsem_core::Semaphore;
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// let pool = Semaphore::new(redis, "pool", 3)?;
    /// assert_eq!(pool.key(), "semaphore:pool");
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidOption`] if `key` is empty or `limit` is 0.
    pub fn new(backend: B, key: impl AsRef<str>, limit: u32) -> Result<Self, LockError> {
        Self::with_options(backend, key, limit, LockOptions::default())
    }

    /// A semaphore with `options`.
    ///
    /// ```
    /// # use redsem_core::{LockOptions, Semaphore};
    /// # use redsem_mock::MockBackend;
    /// let options = LockOptions::builder().max_attempts(1).build()?;
    /// let pool = Semaphore::with_options(MockBackend::new(), "pool", 3, options)?;
    /// assert_eq!(pool.options().max_attempts(), Some(1));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidOption`] if `key` is empty or `limit` is 0.
    pub fn with_options(
        backend: B,
        key: impl AsRef<str>,
        limit: u32,
        options: LockOptions,
    ) -> Result<Self, LockError> {
        let commands = semaphore_commands(key.as_ref(), limit, 0, &options)?;
        Ok(Semaphore {
            core: LockCore::new(SingleNode::new(commands, backend, &options), options),
        })
    }

    /// The number of holders allowed.
    ///
    /// ```
    /// # use redsem_core::Semaphore;
    /// # use redsem_mock::MockBackend;
    /// assert_eq!(Semaphore::new(MockBackend::new(), "pool", 3)?.limit(), 3);
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn limit(&self) -> u32 {
        self.core.protocol.commands.limit
    }

    /// The backend this semaphore runs on.
    ///
    /// ```
    /// # use redsem_core::Semaphore;
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// let pool = Semaphore::new(redis.clone(), "pool", 3)?;
    /// assert!(pool.backend().is_same_node(&redis));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn backend(&self) -> &B {
        &self.core.protocol.backend
    }
}

lock_methods!(
    Semaphore,
    "redsem_core::Semaphore::new(redis.clone(), \"jobs\", 1)?",
    RedisBackend + 'static
);

/// A distributed semaphore whose holders each take `permits` of `limit`
/// slots at once (all or nothing).
///
/// Members are `<identifier>_0 .. <identifier>_<permits-1>` in the same
/// sorted set as [`Semaphore`], as in redis-semaphore.
///
/// ```
/// use redsem_core::MultiSemaphore;
/// use redsem_mock::MockBackend;
///
/// # futures::executor::block_on(async {
/// let backend = MockBackend::new();
/// let big = MultiSemaphore::new(backend.clone(), "gpu", 4, 3)?;
/// let guard = big.acquire().await?;
/// let id = guard.identifier().to_owned();
/// assert_eq!(backend.zrange("semaphore:gpu"), [0, 1, 2].map(|i| format!("{id}_{i}")));
/// assert!(big.try_acquire().await?.is_none()); // 3 + 3 > 4
/// guard.release().await?;
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
pub struct MultiSemaphore<B> {
    core: Arc<LockCore<SingleNode<SemaphoreCommands, B>>>,
}

impl<B: RedisBackend + 'static> MultiSemaphore<B> {
    /// A multi-semaphore on `key` where each holder takes `permits` of
    /// `limit` slots, with default options.
    ///
    /// ```
    /// # use redsem_core::MultiSemaphore;
    /// # use redsem_mock::MockBackend;
    /// let gpu = MultiSemaphore::new(MockBackend::new(), "gpu", 8, 3)?;
    /// assert_eq!(gpu.key(), "semaphore:gpu");
    /// assert!(MultiSemaphore::new(MockBackend::new(), "gpu", 2, 3).is_err()); // 3 > 2
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`LockError::InvalidOption`] if `key` is empty, `limit` or `permits`
    /// is 0, or `permits` exceeds `limit` (it could never be acquired).
    pub fn new(
        backend: B,
        key: impl AsRef<str>,
        limit: u32,
        permits: u32,
    ) -> Result<Self, LockError> {
        Self::with_options(backend, key, limit, permits, LockOptions::default())
    }

    /// A multi-semaphore with `options`.
    ///
    /// ```
    /// # use redsem_core::{LockOptions, MultiSemaphore};
    /// # use redsem_mock::MockBackend;
    /// let options = LockOptions::builder().identifier_suffix("trainer").build()?;
    /// let gpu = MultiSemaphore::with_options(MockBackend::new(), "gpu", 8, 3, options)?;
    /// assert_eq!(gpu.permits(), 3);
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_options(
        backend: B,
        key: impl AsRef<str>,
        limit: u32,
        permits: u32,
        options: LockOptions,
    ) -> Result<Self, LockError> {
        if permits == 0 {
            return Err(LockError::invalid("permits", "must be at least 1"));
        }
        let commands = semaphore_commands(key.as_ref(), limit, permits, &options)?;
        Ok(MultiSemaphore {
            core: LockCore::new(SingleNode::new(commands, backend, &options), options),
        })
    }

    /// The number of slots.
    ///
    /// ```
    /// # use redsem_core::MultiSemaphore;
    /// # use redsem_mock::MockBackend;
    /// assert_eq!(MultiSemaphore::new(MockBackend::new(), "gpu", 8, 3)?.limit(), 8);
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn limit(&self) -> u32 {
        self.core.protocol.commands.limit
    }

    /// The slots each holder takes.
    ///
    /// ```
    /// # use redsem_core::MultiSemaphore;
    /// # use redsem_mock::MockBackend;
    /// assert_eq!(MultiSemaphore::new(MockBackend::new(), "gpu", 8, 3)?.permits(), 3);
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn permits(&self) -> u32 {
        self.core.protocol.commands.permits
    }

    /// The backend this multi-semaphore runs on.
    ///
    /// ```
    /// # use redsem_core::MultiSemaphore;
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// let gpu = MultiSemaphore::new(redis.clone(), "gpu", 8, 3)?;
    /// assert!(gpu.backend().is_same_node(&redis));
    /// # Ok::<(), redsem_core::LockError>(())
    /// ```
    pub fn backend(&self) -> &B {
        &self.core.protocol.backend
    }
}

lock_methods!(
    MultiSemaphore,
    "redsem_core::MultiSemaphore::new(redis.clone(), \"jobs\", 4, 3)?",
    RedisBackend + 'static
);

/// Largest `limit` of the semaphore kinds: the sorted set holds at most
/// this many members.
///
/// ```
/// use redsem_core::{Semaphore, MAX_LIMIT};
/// # use redsem_mock::MockBackend;
/// assert!(Semaphore::new(MockBackend::new(), "k", MAX_LIMIT).is_ok());
/// assert!(Semaphore::new(MockBackend::new(), "k", MAX_LIMIT + 1).is_err());
/// ```
pub const MAX_LIMIT: u32 = 1_000_000;

/// Largest `permits` of the multi-semaphore kinds: every acquire, refresh
/// and release script touches each permit's member, and Redis runs nothing
/// else meanwhile; at this bound a script runs for about a millisecond.
///
/// ```
/// use redsem_core::{MultiSemaphore, MAX_PERMITS};
/// # use redsem_mock::MockBackend;
/// assert!(MultiSemaphore::new(MockBackend::new(), "k", 5_000, MAX_PERMITS).is_ok());
/// assert!(MultiSemaphore::new(MockBackend::new(), "k", 5_000, MAX_PERMITS + 1).is_err());
/// ```
pub const MAX_PERMITS: u32 = 1_000;

/// Checks key, limit, permits (0 = plain semaphore) and that identifiers
/// cannot collide with multi-semaphore members.
pub(crate) fn semaphore_commands(
    key: &str,
    limit: u32,
    permits: u32,
    options: &LockOptions,
) -> Result<SemaphoreCommands, LockError> {
    let key = prefixed(SEMAPHORE_PREFIX, key)?;
    if limit == 0 {
        return Err(LockError::invalid("limit", "must be at least 1"));
    }
    if limit > MAX_LIMIT {
        return Err(LockError::invalid(
            "limit",
            format!("must be at most {MAX_LIMIT}, got {limit}"),
        ));
    }
    if permits > MAX_PERMITS {
        return Err(LockError::invalid(
            "permits",
            format!(
                "must be at most {MAX_PERMITS} (each permit is a member that every script \
                 call touches while Redis waits), got {permits}"
            ),
        ));
    }
    check_member_safe(options)?;
    if permits > limit {
        return Err(LockError::invalid(
            "permits",
            format!("must not exceed limit: {permits} permits of a limit of {limit} could never be acquired"),
        ));
    }
    Ok(SemaphoreCommands::new(key, limit, permits).fencing(options.fencing_tokens))
}

/// A semaphore member named `<x>_<digits>` is also what a MultiSemaphore
/// holder `<x>` stores for one of its permits, so such identifiers (or
/// suffixes) could share a member with another holder on the same key:
/// one slot counted for two, and one's release deleting the other's.
fn check_member_safe(options: &LockOptions) -> Result<(), LockError> {
    let ends_like_a_member = |s: &str| {
        s.rsplit_once('_')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let (option, value) = match &options.identity {
        Identity::Fixed(id) => ("identifier", id),
        Identity::Random { suffix: Some(s) } => ("identifier_suffix", s),
        Identity::Random { suffix: None } => return Ok(()),
    };
    if ends_like_a_member(value) {
        return Err(LockError::invalid(
            option,
            format!(
                "`{value}` ends in `_<number>`, the form of a MultiSemaphore member (holder \
                 `{}` with permit {}), so on a semaphore key it could share a member with \
                 another holder; choose one that does not end in `_` and digits",
                value.rsplit_once('_').map_or("", |(h, _)| h),
                value.rsplit_once('_').map_or("", |(_, n)| n),
            ),
        ));
    }
    Ok(())
}

/// Shows what the semaphore is: its key, limit and options, not its
/// backend or internal state (so `B` need not be `Debug`).
///
/// ```
/// use redsem_core::Semaphore;
/// use redsem_mock::MockBackend;
///
/// let pool = Semaphore::new(MockBackend::new(), "api", 5)?;
/// let shown = format!("{pool:?}");
/// assert!(shown.starts_with(r#"Semaphore { key: "semaphore:api", limit: 5, options: LockOptions {"#));
/// assert!(!shown.contains("MockBackend"));
/// # Ok::<(), redsem_core::LockError>(())
/// ```
impl<B> fmt::Debug for Semaphore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.core.protocol.commands;
        self.core
            .fmt_lock(f, "Semaphore", &c.key, &[("limit", &c.limit)])
    }
}

/// Shows what the multi-semaphore is: its key, limit, permits and options,
/// not its backend or internal state (so `B` need not be `Debug`).
///
/// ```
/// use redsem_core::MultiSemaphore;
/// use redsem_mock::MockBackend;
///
/// let gpu = MultiSemaphore::new(MockBackend::new(), "gpu", 8, 2)?;
/// let shown = format!("{gpu:?}");
/// assert!(shown.starts_with(
///     r#"MultiSemaphore { key: "semaphore:gpu", limit: 8, permits: 2, options: LockOptions {"#
/// ));
/// assert!(!shown.contains("MockBackend"));
/// # Ok::<(), redsem_core::LockError>(())
/// ```
impl<B> fmt::Debug for MultiSemaphore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.core.protocol.commands;
        let shape: [(&str, &dyn fmt::Debug); 2] = [("limit", &c.limit), ("permits", &c.permits)];
        self.core.fmt_lock(f, "MultiSemaphore", &c.key, &shape)
    }
}
