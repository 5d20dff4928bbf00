//! [`Lock`]: what every lock kind offers, for code that works with any of
//! them (a job runner that takes "a lock", a test helper).

use std::fmt;
use std::future::Future;
use std::pin::pin;

use async_trait::async_trait;
use futures::future::{select, Either};

use crate::error::{LockError, LockKind};
use crate::guard::LockGuard;
use crate::inspect::Inspection;
use crate::options::LockOptions;

/// The operations all six lock kinds share. Object-safe
/// (`Box<dyn Lock>`, `&dyn Lock`), except [`with_lock`](Lock::with_lock),
/// which is generic over the work.
///
/// ```
/// use redsem_core::{Lock, LockError, Mutex, RedlockSemaphore};
/// use redsem_mock::MockBackend;
///
/// /// Runs a job under whatever lock it is given.
/// async fn run_job(lock: &dyn Lock) -> Result<String, LockError> {
///     let guard = lock.acquire().await?;
///     let done = format!("ran under {} {}", lock.kind(), lock.key());
///     guard.release().await?;
///     Ok(done)
/// }
///
/// # futures::executor::block_on(async {
/// let redis = MockBackend::new();
/// let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
/// let locks: Vec<Box<dyn Lock>> = vec![
///     Box::new(Mutex::new(redis.clone(), "reports")?),
///     Box::new(RedlockSemaphore::new(nodes, "exports", 2)?),
/// ];
/// for lock in &locks {
///     println!("{}", run_job(lock.as_ref()).await?);
/// }
/// # Ok::<(), LockError>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait Lock: Send + Sync + fmt::Debug {
    /// The lock kind.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use redsem_core::{Lock, Mutex};
    /// use redsem_mock::MockBackend;
    /// let lock: Box<dyn Lock> = Box::new(Mutex::new(MockBackend::new(), "jobs")?);
    /// assert_eq!(lock.kind(), redsem_core::LockKind::Mutex);
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    fn kind(&self) -> LockKind;

    /// The Redis key, with its `mutex:`/`semaphore:` prefix.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use redsem_core::{Lock, Mutex};
    /// use redsem_mock::MockBackend;
    /// let lock: Box<dyn Lock> = Box::new(Mutex::new(MockBackend::new(), "jobs")?);
    /// assert_eq!(lock.key(), "mutex:jobs");
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    fn key(&self) -> &str;

    /// The options this lock was built with.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use redsem_core::{Lock, Mutex};
    /// use redsem_mock::MockBackend;
    /// let lock: Box<dyn Lock> = Box::new(Mutex::new(MockBackend::new(), "jobs")?);
    /// assert_eq!(lock.options().max_attempts(), None);
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    fn options(&self) -> &LockOptions;

    /// Acquires, retrying until the acquire timeout or attempt limit.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use redsem_core::{Lock, Mutex};
    /// use redsem_mock::MockBackend;
    /// let lock: Box<dyn Lock> = Box::new(Mutex::new(MockBackend::new(), "jobs")?);
    /// let guard = lock.acquire().await?;
    /// guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As the lock types' own `acquire`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the acquire; whatever a call in flight
    /// may have taken is released in the background.
    async fn acquire(&self) -> Result<LockGuard, LockError>;

    /// Makes one attempt: `Ok(None)` when the lock is busy.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use redsem_core::{Lock, Mutex};
    /// use redsem_mock::MockBackend;
    /// let lock: Box<dyn Lock> = Box::new(Mutex::new(MockBackend::new(), "jobs")?);
    /// let guard = lock.try_acquire().await?.expect("free");
    /// assert!(lock.try_acquire().await?.is_none());
    /// guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As the lock types' own `try_acquire`.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Lock::acquire).
    async fn try_acquire(&self) -> Result<Option<LockGuard>, LockError>;

    /// Who holds the lock: per node, each holder's identifier, permits and
    /// time to expiry. One read-only script call per node; node errors are
    /// reported per node, never as an `Err`.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use redsem_core::{Lock, Mutex};
    /// use redsem_mock::MockBackend;
    /// let lock: Box<dyn Lock> = Box::new(Mutex::new(MockBackend::new(), "jobs")?);
    /// let seen = lock.inspect().await?;
    /// assert_eq!(seen.key, "mutex:jobs");
    /// assert!(seen.nodes[0].as_ref().unwrap().holders.is_empty()); // free
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for checks a future version
    /// may make.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    async fn inspect(&self) -> Result<Inspection, LockError>;

    /// Acquires, runs `work` while holding the lock and releases. If the
    /// lock is lost before `work` finishes, its future is dropped and the
    /// loss is returned; once it has finished, its result is returned even
    /// if the release fails (a loss found then goes to `on_lock_lost`).
    ///
    /// ```
    /// use redsem_core::{Lock, Semaphore};
    /// use redsem_mock::MockBackend;
    /// # futures::executor::block_on(async {
    /// let lock = Semaphore::new(MockBackend::new(), "api", 3)?;
    /// let n = Lock::with_lock(&lock, || async { 2 + 2 }).await?;
    /// assert_eq!(n, 4);
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`acquire`](Lock::acquire), and a
    /// [`LockError::Lost`] if the lock was lost during the work.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops `work`'s future and releases the lock in
    /// the background.
    async fn with_lock<F, Fut, T>(&self, work: F) -> Result<T, LockError>
    where
        Self: Sized,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = T> + Send,
        T: Send,
    {
        let guard = self.acquire().await?;
        let outcome = {
            let work = pin!(work());
            let lost = pin!(guard.lost());
            match select(work, lost).await {
                Either::Left((value, _)) => Ok(value),
                Either::Right((lost, _)) => Err(lost),
            }
        };
        let _ = guard.release().await;
        outcome
    }
}
