//! [`LockGuard`]: proof of a hold, with release, loss detection and refresh
//! control.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::error::{LockError, LockKind};
use crate::hold::{Hold, Released};

/// A held lock of any kind, returned by `acquire` and `try_acquire`.
///
/// While the guard lives, redsem refreshes the hold in the background (unless
/// refresh is off). Release it with [`release`](LockGuard::release), which
/// confirms the outcome; dropping the guard releases it in the background,
/// best effort.
///
/// ```
/// # use redsem_core::Mutex;
/// # use redsem_mock::MockBackend;
/// # futures::executor::block_on(async {
/// let mutex = Mutex::new(MockBackend::new(), "jobs")?;
/// let guard = mutex.acquire().await?;
/// assert!(guard.is_acquired());
/// assert_eq!(guard.key(), "mutex:jobs");
/// // `Debug` shows the key and state, never the whole identifier (anyone
/// // who has it can release or refresh the hold).
/// assert!(!format!("{guard:?}").contains(guard.identifier()));
/// guard.release().await?;
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
#[must_use = "dropping the guard releases the lock at once"]
#[derive(Debug)]
pub struct LockGuard {
    hold: Arc<Hold>,
}

impl LockGuard {
    pub(crate) fn new(hold: Arc<Hold>) -> Self {
        LockGuard { hold }
    }

    /// The identifier this hold is stored under in Redis.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let redis = MockBackend::new();
    /// let guard = Mutex::new(redis.clone(), "jobs")?.acquire().await?;
    /// assert_eq!(redis.get("mutex:jobs").as_deref(), Some(guard.identifier()));
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn identifier(&self) -> &str {
        &self.hold.id
    }

    /// The Redis key, with its `mutex:`/`semaphore:` prefix.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let guard = Mutex::new(MockBackend::new(), "jobs")?.acquire().await?;
    /// assert_eq!(guard.key(), "mutex:jobs");
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn key(&self) -> &str {
        self.hold.core.protocol.key()
    }

    /// The lock kind.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let guard = Mutex::new(MockBackend::new(), "jobs")?.acquire().await?;
    /// assert_eq!(guard.kind(), redsem_core::LockKind::Mutex);
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn kind(&self) -> LockKind {
        self.hold.core.protocol.kind()
    }

    /// `true` while the hold is confirmed: not lost, not released, and the
    /// last confirmation (acquire or refresh) has not run out.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let redis = MockBackend::new();
    /// let guard = Mutex::new(redis.clone(), "jobs")?.acquire().await?;
    /// assert!(guard.is_acquired());
    /// redis.del("mutex:jobs");
    /// assert!(guard.release().await.is_err()); // found lost on release
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn is_acquired(&self) -> bool {
        self.hold.is_acquired()
    }

    /// How many attempts the acquire that returned this guard made.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let guard = Mutex::new(MockBackend::new(), "jobs")?.acquire().await?;
    /// assert_eq!(guard.attempts(), 1);
    /// assert!(guard.waited() < std::time::Duration::from_secs(1));
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn attempts(&self) -> u32 {
        self.hold.attempts
    }

    /// How long the acquire that returned this guard waited, from its
    /// start to the attempt that succeeded.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let guard = Mutex::new(MockBackend::new(), "jobs")?.acquire().await?;
    /// println!("got the lock after {:?}", guard.waited());
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn waited(&self) -> std::time::Duration {
        self.hold.waited
    }

    /// When the last confirmed acquire or refresh runs out, measured from
    /// when that call was sent (so it errs early, never late).
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// use std::time::{Duration, Instant};
    /// let guard = Mutex::new(MockBackend::new(), "jobs")?.acquire().await?;
    /// // default lock timeout: 10s
    /// assert!(guard.valid_until() > Instant::now() + Duration::from_secs(5));
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn valid_until(&self) -> Instant {
        self.hold.valid_until()
    }

    /// The fencing token of this acquisition: greater than every token
    /// handed out before for the same key, by any redsem holder. Pass it
    /// with every write to the resource the lock protects, and have the
    /// resource refuse tokens older than the newest it has seen: a holder
    /// that was paused past its lock timeout then cannot overwrite the work
    /// of the next one ([`FencedResource`](crate::FencedResource) does this
    /// for a value kept in Redis; the guide shows it for SQL).
    ///
    /// 0 when the lock was built with
    /// [`fencing_tokens(false)`](crate::LockOptionsBuilder::fencing_tokens).
    ///
    /// The tokens come from a counter key next to the lock key, which must
    /// survive: a Redis restarted without persistence (or `FLUSHALL`, or
    /// eviction) starts them over, and on Redlock such a node can hand out
    /// a token an earlier holder had. See the README's "Fencing tokens".
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let mutex = Mutex::new(MockBackend::new(), "jobs")?;
    /// let first = mutex.acquire().await?;
    /// let token = first.fencing_token();
    /// first.release().await?;
    /// let second = mutex.acquire().await?;
    /// assert!(second.fencing_token() > token);
    /// # second.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn fencing_token(&self) -> u64 {
        self.hold.token
    }

    /// How many replicas confirmed the last acquire or refresh of this
    /// hold: `None` unless the lock asks for synced grants
    /// ([`ReplicaSync`](crate::ReplicaSync)).
    ///
    /// ```
    /// # use redsem_core::{LockOptions, Mutex, ReplicaAcks, ReplicaPolicy, ReplicaSync};
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let redis = MockBackend::new(); // no replicas
    /// let sync = ReplicaSync::new(1).on_missing(ReplicaPolicy::Report);
    /// let options = LockOptions::builder().synced_replicas(sync).build()?;
    /// let guard = Mutex::with_options(redis, "jobs", options)?.acquire().await?;
    /// assert_eq!(guard.replicas(), Some(ReplicaAcks { confirmed: 0, wanted: 1 }));
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn replicas(&self) -> Option<crate::ReplicaAcks> {
        self.hold.replicas()
    }

    /// Stops refreshing. The hold stays in Redis until its lock timeout
    /// elapses; then it counts as lost with [`LostReason::Expired`]
    /// (`lost()` resolves, the callback runs).
    ///
    ///
    /// ```
    /// # use redsem_core::{LockOptions, LostReason, LockError, Mutex};
    /// # use redsem_mock::MockBackend;
    /// # use std::time::Duration;
    /// # futures::executor::block_on(async {
    /// let options = LockOptions::builder().lock_timeout(Duration::from_millis(100)).build()?;
    /// let guard = Mutex::with_options(MockBackend::new(), "jobs", options)?.acquire().await?;
    /// guard.stop_refresh();
    /// let err = guard.lost().await; // after about 100ms
    /// assert!(matches!(err, LockError::Lost { reason: LostReason::Expired, .. }));
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// [`LostReason::Expired`]: crate::LostReason::Expired
    pub fn stop_refresh(&self) {
        self.hold.stop_refresh();
    }

    /// Resolves with a [`LockError::Lost`] once the hold is lost (refresh
    /// found it gone, could not confirm it within the lock timeout, or it
    /// expired after refresh was stopped). Pending while the hold is fine.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future changes nothing.
    ///
    /// Race it against the work, so the work stops when the lock is lost:
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// use futures::future::{select, Either};
    /// # futures::executor::block_on(async {
    /// let guard = Mutex::new(MockBackend::new(), "jobs")?.acquire().await?;
    /// let work = Box::pin(async { 42 });
    /// match select(work, Box::pin(guard.lost())).await {
    ///     Either::Left((answer, _)) => assert_eq!(answer, 42),
    ///     Either::Right((lost, _)) => return Err(lost),
    /// }
    /// guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub async fn lost(&self) -> LockError {
        let reason = LostWait {
            hold: &self.hold,
            slot: None,
        }
        .await;
        self.hold.core.lost_error(reason)
    }

    /// A read-only view of this hold for code that runs under it (see
    /// `with_lock_status` on the lock types): it can check the hold, not
    /// release it.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let guard = Mutex::new(MockBackend::new(), "jobs")?.acquire().await?;
    /// let status = guard.status();
    /// assert!(status.is_acquired());
    /// assert_eq!(status.identifier(), guard.identifier());
    /// guard.release().await?;
    /// assert!(!status.is_acquired());
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn status(&self) -> LockStatus {
        LockStatus {
            hold: self.hold.clone(),
        }
    }

    /// Lets go of the guard without releasing the hold: refresh stops and
    /// the hold stays in Redis until its lock timeout, or until a lock built
    /// with this identifier and
    /// [`acquired_externally`](crate::LockOptionsBuilder::acquired_externally)
    /// takes it over (for example a worker that received the identifier in a
    /// job message). Returns the identifier.
    ///
    /// ```
    /// # use redsem_core::{LockOptions, Mutex};
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let backend = MockBackend::new();
    /// // scheduler: take the lock and hand it over
    /// let id = Mutex::new(backend.clone(), "report")?.acquire().await?.detach();
    /// // worker: take over the same hold
    /// let options = LockOptions::builder().identifier(id).acquired_externally(true).build()?;
    /// let guard = Mutex::with_options(backend.clone(), "report", options)?.acquire().await?;
    /// guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn detach(self) -> String {
        self.hold.detach();
        self.hold.id.clone()
    }

    /// Releases the hold and confirms it.
    ///
    /// Waits for an in-flight refresh first, so a refresh can never
    /// re-create a released hold. A call that fails with a transient error
    /// (a reset connection, a failover) is retried with backoff until the
    /// hold would expire by itself; for Redlock, nodes that failed are
    /// retried in the background after a quorum of them released.
    ///
    /// # Errors
    ///
    /// - [`LockError::Lost`] if the hold had been lost before release (the
    ///   work under it may not have been exclusive), including when Redis no
    ///   longer had it at release time. A loss found here is also reported
    ///   to `on_lock_lost` and [`lost`](Self::lost), like any other.
    /// - [`LockError::Backend`] (or, for Redlock,
    ///   [`LockError::QuorumNotReached`]) if Redis gave no answer before the
    ///   hold's validity ran out; the hold then expires after its lock
    ///   timeout.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the release continues
    /// in the background as if the guard had been dropped.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let redis = MockBackend::new();
    /// let guard = Mutex::new(redis.clone(), "jobs")?.acquire().await?;
    /// guard.release().await?;
    /// assert!(!redis.exists("mutex:jobs"));
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub async fn release(self) -> Result<(), LockError> {
        let hold = self.hold.clone();
        // While this future runs the guard is still alive: dropping the
        // future drops it, which releases in the background.
        let released = hold.release(false).await;
        drop(self); // already released: its drop does nothing
        match released {
            Released::Ok | Released::Already => Ok(()),
            Released::Lost(reason) => Err(hold.core.lost_error(reason)),
            Released::Failed(e) => Err(e),
        }
    }
}

/// A read-only view of a hold, from [`LockGuard::status`]: what work done
/// under a lock may check (is it still held, for how long) without being
/// able to release it. Cheap to clone.
///
/// ```
/// use redsem_core::Mutex;
/// use redsem_mock::MockBackend;
/// # futures::executor::block_on(async {
/// let mutex = Mutex::new(MockBackend::new(), "jobs")?;
/// let ok = mutex
///     .with_lock_status(|status| async move { status.is_acquired() && status.key() == "mutex:jobs" })
///     .await?;
/// assert!(ok);
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LockStatus {
    hold: Arc<Hold>,
}

impl LockStatus {
    /// The identifier the hold is stored under.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let mutex = Mutex::new(MockBackend::new(), "jobs")?;
    /// let id = mutex.with_lock_status(|status| async move { status.identifier().to_owned() }).await?;
    /// assert_eq!(id.len(), 36); // a UUID v4
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn identifier(&self) -> &str {
        &self.hold.id
    }

    /// The Redis key, with its prefix.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let guard = Mutex::new(MockBackend::new(), "jobs")?.acquire().await?;
    /// assert_eq!(guard.status().key(), "mutex:jobs");
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn key(&self) -> &str {
        self.hold.core.protocol.key()
    }

    /// As [`LockGuard::is_acquired`].
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let mutex = Mutex::new(MockBackend::new(), "jobs")?;
    /// assert!(mutex.with_lock_status(|s| async move { s.is_acquired() }).await?);
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn is_acquired(&self) -> bool {
        self.hold.is_acquired()
    }

    /// As [`LockGuard::valid_until`]: when the last confirmation runs out.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let guard = Mutex::new(MockBackend::new(), "jobs")?.acquire().await?;
    /// assert!(guard.status().valid_until() > std::time::Instant::now());
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn valid_until(&self) -> Instant {
        self.hold.valid_until()
    }

    /// As [`LockGuard::fencing_token`]: this acquisition's fencing token.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let mutex = Mutex::new(MockBackend::new(), "jobs")?;
    /// let token = mutex.with_lock_status(|status| async move { status.fencing_token() }).await?;
    /// assert_eq!(token, 1); // the first acquisition on a new key
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn fencing_token(&self) -> u64 {
        self.hold.token
    }

    /// As [`LockGuard::replicas`]: replicas that confirmed the last
    /// acquire or refresh, when the lock asks for synced grants.
    ///
    /// ```
    /// # use redsem_core::Mutex;
    /// # use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let mutex = Mutex::new(MockBackend::new(), "jobs")?;
    /// let acks = mutex.with_lock_status(|status| async move { status.replicas() }).await?;
    /// assert_eq!(acks, None); // not asked for
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn replicas(&self) -> Option<crate::ReplicaAcks> {
        self.hold.replicas()
    }
}

/// Waits for a hold's loss; unregisters its waker when dropped.
struct LostWait<'a> {
    hold: &'a Hold,
    slot: Option<u64>,
}

impl Future for LostWait<'_> {
    type Output = crate::LostReason;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.hold.poll_lost(&mut this.slot, cx.waker()) {
            Some(reason) => Poll::Ready(reason),
            None => Poll::Pending,
        }
    }
}

impl Drop for LostWait<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.hold.forget_waiter(slot);
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.hold.clone().release_in_background();
    }
}
