//! Fault injection: injected errors, latency, hangs, a node that is down or
//! restarts.

use std::fmt;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};
use redsem_core::{BackendError, BackendErrorKind};

use crate::MockBackend;

/// What hung calls wait on: resolves when its sender is dropped.
pub(crate) type Gate = Shared<oneshot::Receiver<()>>;

/// An active hang: dropping `_release` wakes every call waiting on `gate`.
struct Hang {
    _release: oneshot::Sender<()>,
    gate: Gate,
}

impl fmt::Debug for Hang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hang")
    }
}

/// A node's injected faults.
#[derive(Debug)]
pub(crate) struct Faults {
    pub(crate) latency: Duration,
    pub(crate) fail_next: u64,
    fail_kind: BackendErrorKind,
    pub(crate) down: bool,
    hang: Option<Hang>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Duration::ZERO,
            fail_next: 0,
            fail_kind: BackendErrorKind::Connection,
            down: false,
            hang: None,
        }
    }
}

impl Faults {
    /// A refused connection while the node is down.
    pub(crate) fn check_up(&self) -> Result<(), BackendError> {
        if self.down {
            return Err(BackendError::new(
                BackendErrorKind::Connection,
                "connection refused",
            ));
        }
        Ok(())
    }

    /// Uses up one injected failure, if any is pending.
    pub(crate) fn take_injected(&mut self) -> Result<(), BackendError> {
        if self.fail_next == 0 {
            return Ok(());
        }
        self.fail_next -= 1;
        Err(BackendError::new(self.fail_kind, "mock: injected failure"))
    }

    /// What to wait on while the node hangs.
    pub(crate) fn hang_gate(&self) -> Option<Gate> {
        self.hang.as_ref().map(|h| h.gate.clone())
    }

    pub(crate) fn is_hung(&self) -> bool {
        self.hang.is_some()
    }
}

/// Fault injection. Each fault applies to this node only (and so to every
/// clone of this handle), takes effect on the next calls, and leaves the
/// sync inspection methods alone.
impl MockBackend {
    /// The next `n` backend calls fail with a [`BackendErrorKind::Connection`]
    /// error, "mock: injected failure", without running. Replaces any pending
    /// count. A call takes its failure when it would run, after any latency
    /// or hang.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::{LockOptions, Mutex};
    /// # futures::executor::block_on(async {
    /// # use redsem_core::{LockOptions, Mutex};
    /// let redis = MockBackend::new();
    /// redis.fail_next(1); // the first attempt fails, the retry succeeds
    /// let guard = Mutex::new(redis.clone(), "jobs")?.acquire().await?;
    /// assert_eq!(guard.attempts(), 2);
    /// # guard.release().await?;
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn fail_next(&self, n: u64) {
        self.fail_next_with(n, BackendErrorKind::Connection);
    }

    /// Like [`fail_next`](Self::fail_next) with an error of `kind`, such as
    /// [`BackendErrorKind::Timeout`] or [`BackendErrorKind::Server`].
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::Mutex;
    /// # futures::executor::block_on(async {
    /// use redsem_core::{BackendErrorKind, RedisBackend};
    /// let redis = MockBackend::new();
    /// redis.fail_next_with(1, BackendErrorKind::Server);
    /// let err = redis.set_nx_px("k", "v", 1000).await.unwrap_err();
    /// assert_eq!(err.kind(), BackendErrorKind::Server);
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn fail_next_with(&self, n: u64, kind: BackendErrorKind) {
        let mut state = self.node.lock();
        state.faults.fail_next = n;
        state.faults.fail_kind = kind;
    }

    /// Injected failures not yet used up.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.fail_next(3);
    /// assert_eq!(redis.pending_failures(), 3);
    /// ```
    pub fn pending_failures(&self) -> u64 {
        self.node.lock().faults.fail_next
    }

    /// Every backend call takes `latency` more (an `async_io` timer, so no
    /// runtime is needed): half before the command runs, half after, like a
    /// round trip. A call dropped in the first half never runs its command;
    /// one dropped in the second half ran it and loses the reply.
    /// [`Duration::ZERO`] turns the delay off.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::{LockOptions, Mutex};
    /// # futures::executor::block_on(async {
    /// use std::time::{Duration, Instant};
    /// let redis = MockBackend::new();
    /// redis.set_latency(Duration::from_millis(20));
    /// let start = Instant::now();
    /// Mutex::new(redis, "jobs")?.acquire().await?.release().await?;
    /// assert!(start.elapsed() >= Duration::from_millis(40)); // two round trips
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn set_latency(&self, latency: Duration) {
        self.node.lock().faults.latency = latency;
    }

    /// The current per-call latency.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// use std::time::Duration;
    /// let redis = MockBackend::new();
    /// redis.set_latency(Duration::from_millis(5));
    /// assert_eq!(redis.latency(), Duration::from_millis(5));
    /// ```
    pub fn latency(&self) -> Duration {
        self.node.lock().faults.latency
    }

    /// Backend calls wait (pend, without spinning) until
    /// [`unhang`](Self::unhang), then run. Dropping a waiting call is fine:
    /// its command never runs. Calls that start while the node is down still
    /// fail at once.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::{LockOptions, Mutex};
    /// # futures::executor::block_on(async {
    /// use std::time::Duration;
    /// let redis = MockBackend::new();
    /// redis.hang();
    /// let options = LockOptions::builder().acquire_timeout(Duration::from_millis(50)).build()?;
    /// let err = Mutex::with_options(redis.clone(), "jobs", options)?.acquire().await.unwrap_err();
    /// assert!(err.is_timeout() && err.is_unreachable());
    /// redis.unhang();
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn hang(&self) {
        let mut state = self.node.lock();
        if state.faults.hang.is_none() {
            let (release, gate) = oneshot::channel();
            state.faults.hang = Some(Hang {
                _release: release,
                gate: gate.shared(),
            });
        }
    }

    /// Ends a [`hang`](Self::hang): the waiting calls wake up and run.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.hang();
    /// redis.unhang();
    /// assert!(!redis.is_hung());
    /// ```
    pub fn unhang(&self) {
        let hang = self.node.lock().faults.hang.take();
        drop(hang); // wakes the waiters, outside the lock
    }

    /// Whether the node hangs.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.hang();
    /// assert!(redis.is_hung());
    /// ```
    pub fn is_hung(&self) -> bool {
        self.node.lock().faults.is_hung()
    }

    /// Takes the node down: every backend call fails at once with a
    /// [`BackendErrorKind::Connection`] error, "connection refused" (calls
    /// already waiting on latency or a hang fail when they wake). The data is
    /// kept.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::{LockOptions, Mutex};
    /// # futures::executor::block_on(async {
    /// use std::time::Duration;
    /// let redis = MockBackend::new();
    /// redis.go_down();
    /// let options = LockOptions::builder().acquire_timeout(Duration::from_millis(50)).build()?;
    /// let err = Mutex::with_options(redis, "jobs", options)?.acquire().await.unwrap_err();
    /// assert!(err.is_unreachable());
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn go_down(&self) {
        let dropped = {
            let mut state = self.node.lock();
            state.faults.down = true;
            state.drop_subscriptions()
        };
        if dropped {
            self.node.notifications.reset();
        }
    }

    /// Brings the node back up after [`go_down`](Self::go_down), data intact.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.set("k", "v");
    /// redis.go_down();
    /// redis.come_up();
    /// assert_eq!(redis.get("k").as_deref(), Some("v"));
    /// ```
    pub fn come_up(&self) {
        self.node.lock().faults.down = false;
    }

    /// Whether the node is down.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.go_down();
    /// assert!(redis.is_down());
    /// ```
    pub fn is_down(&self) -> bool {
        self.node.lock().faults.down
    }

    /// Restarts the node without persistence: all keys and the script cache
    /// are wiped and the node is up. The clock, the statistics and the other
    /// faults (latency, hang, pending failures) stay as they are.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// redis.set("k", "v");
    /// redis.go_down();
    /// redis.restart();
    /// assert!(!redis.is_down() && !redis.exists("k"));
    /// ```
    pub fn restart(&self) {
        let dropped = {
            let mut state = self.node.lock();
            state.data.clear();
            state.scripts.clear();
            state.faults.down = false;
            state.drop_subscriptions()
        };
        if dropped {
            self.node.notifications.reset();
        }
    }
}
