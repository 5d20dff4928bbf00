//! The methods every lock type shares, written once.

/// Adds `acquire`, `try_acquire`, `with_lock`, `key`, `options` and
/// `identifier` to a lock type whose field `core` is an
/// `Arc<LockCore<impl Protocol>>`.
///
/// `$new` is the expression the doc examples build the lock with, from
/// `redis`, a `redsem_mock::MockBackend`; one acquire must fill the lock, so
/// that a second `try_acquire` finds it busy.
macro_rules! lock_methods {
    ($ty:ident, $new:literal, $($bounds:tt)+) => {
        impl<B: $($bounds)+> $ty<B> {
            fn dyn_core(&self) -> std::sync::Arc<crate::lock_core::DynCore> {
                self.core.clone()
            }

            /// Acquires the lock, retrying every `retry_interval` until the
            /// acquire timeout or the attempt limit. The guard refreshes the
            /// hold in the background until it is released or dropped.
            ///
            /// # Errors
            ///
            /// - [`LockError::Timeout`](crate::LockError::Timeout) when the
            ///   lock stayed busy (its message names kind, key and limit).
            /// - [`LockError::AlreadyHeld`](crate::LockError::AlreadyHeld)
            ///   when this instance has a fixed identifier that is in use.
            /// - [`LockError::Backend`](crate::LockError::Backend) for an
            ///   error retrying cannot fix (a script error); connection errors
            ///   and timeouts are retried until the deadline.
            ///
            /// # Cancel safety
            ///
            /// Dropping the future abandons the acquire. If a call that may
            /// have taken the lock was in flight, redsem releases it in the
            /// background; either way nothing stays held longer than the lock
            /// timeout.
            ///
            /// ```
            #[doc = "# use redsem_mock::MockBackend;"]
            #[doc = "# futures::executor::block_on(async {"]
            #[doc = "# let redis = MockBackend::new();"]
            #[doc = concat!("let lock = ", $new, ";")]
            #[doc = "let guard = lock.acquire().await?;"]
            #[doc = "// ... work under the lock ..."]
            #[doc = "guard.release().await?;"]
            #[doc = "# Ok::<(), redsem_core::LockError>(())"]
            #[doc = "# }).unwrap();"]
            #[doc = "```"]
            pub async fn acquire(&self) -> Result<crate::LockGuard, crate::LockError> {
                crate::acquire::acquire_wait(&self.dyn_core()).await
            }

            /// Makes exactly one attempt: `Ok(None)` when the lock is busy.
            /// (redis-semaphore's `tryAcquire` keeps retrying until the
            /// acquire timeout; use [`acquire`](Self::acquire) and match
            /// [`LockError::Timeout`](crate::LockError::Timeout) for that.)
            ///
            /// # Errors
            ///
            /// As [`acquire`](Self::acquire), except that busy is not an error
            /// and a failed call is returned as is.
            ///
            /// # Cancel safety
            ///
            /// As [`acquire`](Self::acquire).
            ///
            /// ```
            #[doc = "# use redsem_mock::MockBackend;"]
            #[doc = "# futures::executor::block_on(async {"]
            #[doc = "# let redis = MockBackend::new();"]
            #[doc = concat!("let lock = ", $new, ";")]
            #[doc = "let first = lock.try_acquire().await?.expect(\"the lock is free\");"]
            #[doc = "assert!(lock.try_acquire().await?.is_none()); // busy now"]
            #[doc = "first.release().await?;"]
            #[doc = "# Ok::<(), redsem_core::LockError>(())"]
            #[doc = "# }).unwrap();"]
            #[doc = "```"]
            pub async fn try_acquire(&self) -> Result<Option<crate::LockGuard>, crate::LockError> {
                crate::acquire::acquire(&self.dyn_core(), crate::acquire::Mode::Try).await
            }

            /// Acquires, runs `work`'s future while holding the lock and
            /// releases. If the lock is lost before `work` finishes, its
            /// future is dropped and the loss is returned.
            ///
            /// # Errors
            ///
            /// Those of [`acquire`](Self::acquire), a
            /// [`LockError::Lost`](crate::LockError::Lost) if the lock was lost
            /// during the work, and those of
            /// [`LockGuard::release`](crate::LockGuard::release).
            ///
            /// # Cancel safety
            ///
            /// Dropping the future drops `work`'s future and releases the
            /// lock in the background.
            ///
            /// ```
            #[doc = "# use redsem_mock::MockBackend;"]
            #[doc = "# futures::executor::block_on(async {"]
            #[doc = "# let redis = MockBackend::new();"]
            #[doc = concat!("let lock = ", $new, ";")]
            #[doc = "let answer = lock.with_lock(|| async { 6 * 7 }).await?;"]
            #[doc = "assert_eq!(answer, 42);"]
            #[doc = "# Ok::<(), redsem_core::LockError>(())"]
            #[doc = "# }).unwrap();"]
            #[doc = "```"]
            pub async fn with_lock<F, Fut, T>(&self, work: F) -> Result<T, crate::LockError>
            where
                F: FnOnce() -> Fut,
                Fut: std::future::Future<Output = T>,
            {
                crate::acquire::with_lock(&self.dyn_core(), work).await
            }

            /// As [`with_lock`](Self::with_lock), and `work` gets a
            /// [`LockStatus`](crate::LockStatus) of the hold, to check that
            /// it is still held or how long it is valid.
            ///
            /// # Errors
            ///
            /// As [`with_lock`](Self::with_lock).
            ///
            /// # Cancel safety
            ///
            /// As [`with_lock`](Self::with_lock).
            ///
            /// ```
            #[doc = "# use redsem_mock::MockBackend;"]
            #[doc = "# futures::executor::block_on(async {"]
            #[doc = "# let redis = MockBackend::new();"]
            #[doc = concat!("let lock = ", $new, ";")]
            #[doc = "let held = lock.with_lock_status(|status| async move { status.is_acquired() }).await?;"]
            #[doc = "assert!(held);"]
            #[doc = "# Ok::<(), redsem_core::LockError>(())"]
            #[doc = "# }).unwrap();"]
            #[doc = "```"]
            pub async fn with_lock_status<F, Fut, T>(&self, work: F) -> Result<T, crate::LockError>
            where
                F: FnOnce(crate::LockStatus) -> Fut,
                Fut: std::future::Future<Output = T>,
            {
                crate::acquire::with_lock_status(&self.dyn_core(), work).await
            }

            /// Who holds the lock: per node, each holder's identifier,
            /// permits and time to expiry (see [`Lock::inspect`](crate::Lock::inspect)).
            ///
            /// # Errors
            ///
            /// None today; node errors are reported per node.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: it only reads.
            ///
            /// ```
            #[doc = "# use redsem_mock::MockBackend;"]
            #[doc = "# futures::executor::block_on(async {"]
            #[doc = "# let redis = MockBackend::new();"]
            #[doc = concat!("let lock = ", $new, ";")]
            #[doc = "let guard = lock.acquire().await?;"]
            #[doc = "let seen = lock.inspect().await?;"]
            #[doc = "let holders = &seen.nodes[0].as_ref().unwrap().holders;"]
            #[doc = "assert_eq!(holders[0].identifier, guard.identifier());"]
            #[doc = "# guard.release().await?;"]
            #[doc = "# Ok::<(), redsem_core::LockError>(())"]
            #[doc = "# }).unwrap();"]
            #[doc = "```"]
            pub async fn inspect(&self) -> Result<crate::Inspection, crate::LockError> {
                Ok(crate::acquire::inspect(&self.dyn_core()).await)
            }

            /// The Redis key, with its `mutex:`/`semaphore:` prefix.
            ///
            /// ```
            #[doc = "# use redsem_mock::MockBackend;"]
            #[doc = "# futures::executor::block_on(async {"]
            #[doc = "# let redis = MockBackend::new();"]
            #[doc = concat!("let lock = ", $new, ";")]
            #[doc = "assert!(lock.key().ends_with(\":jobs\"), \"{}\", lock.key());"]
            #[doc = "# Ok::<(), redsem_core::LockError>(())"]
            #[doc = "# }).unwrap();"]
            #[doc = "```"]
            pub fn key(&self) -> &str {
                crate::protocol::Protocol::key(&self.core.protocol)
            }

            /// The options this lock was built with.
            ///
            /// ```
            #[doc = "# use redsem_mock::MockBackend;"]
            #[doc = "# futures::executor::block_on(async {"]
            #[doc = "# let redis = MockBackend::new();"]
            #[doc = concat!("let lock = ", $new, ";")]
            #[doc = "assert_eq!(lock.options().lock_timeout(), std::time::Duration::from_secs(10));"]
            #[doc = "# Ok::<(), redsem_core::LockError>(())"]
            #[doc = "# }).unwrap();"]
            #[doc = "```"]
            pub fn options(&self) -> &crate::LockOptions {
                &self.core.options
            }

            /// The fixed identifier, if the options set one; otherwise each
            /// acquisition gets a random one (see
            /// [`LockGuard::identifier`](crate::LockGuard::identifier)).
            ///
            /// ```
            #[doc = "# use redsem_mock::MockBackend;"]
            #[doc = "# futures::executor::block_on(async {"]
            #[doc = "# let redis = MockBackend::new();"]
            #[doc = concat!("let lock = ", $new, ";")]
            #[doc = "assert_eq!(lock.identifier(), None); // a fresh random one per acquire"]
            #[doc = "# Ok::<(), redsem_core::LockError>(())"]
            #[doc = "# }).unwrap();"]
            #[doc = "```"]
            pub fn identifier(&self) -> Option<&str> {
                self.core.options.identifier()
            }
        }

        #[async_trait::async_trait]
        impl<B: $($bounds)+> crate::Lock for $ty<B> {
            fn kind(&self) -> crate::LockKind {
                crate::protocol::Protocol::kind(&self.core.protocol)
            }

            fn key(&self) -> &str {
                crate::protocol::Protocol::key(&self.core.protocol)
            }

            fn options(&self) -> &crate::LockOptions {
                &self.core.options
            }

            async fn acquire(&self) -> Result<crate::LockGuard, crate::LockError> {
                crate::acquire::acquire_wait(&self.dyn_core()).await
            }

            async fn try_acquire(&self) -> Result<Option<crate::LockGuard>, crate::LockError> {
                crate::acquire::acquire(&self.dyn_core(), crate::acquire::Mode::Try).await
            }

            async fn inspect(&self) -> Result<crate::Inspection, crate::LockError> {
                Ok(crate::acquire::inspect(&self.dyn_core()).await)
            }
        }

        impl<B> Clone for $ty<B> {
            /// Another handle to the same lock instance (same options, same
            /// fixed-identifier bookkeeping).
            fn clone(&self) -> Self {
                $ty { core: self.core.clone() }
            }
        }
    };
}

pub(crate) use lock_methods;
