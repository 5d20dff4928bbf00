//! [`Clock`]: the time redsem's timers follow for the locks on a backend.
//! Real backends use the system clock; a test backend (the mock, or your
//! own) can hand out a manual clock that the test moves forward, so refresh
//! ticks, loss detection, acquire retries and timeouts, per-call bounds and
//! Redlock validity all happen without sleeping.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::driver::driver;

/// The time source of the locks on one backend, returned by
/// [`RedisBackend::clock`](crate::RedisBackend::clock).
///
/// [`Clock::system`] is real time. [`Clock::manual`] is real time plus an
/// offset that [`advance`](Clock::advance) moves forward: every redsem
/// timer on that clock that falls due is fired, in order, and `advance`
/// returns once redsem's background work for them has settled (refreshes
/// and expiry checks ran, losses were reported and their callbacks ran).
/// Futures of your own that were woken (a waiting `acquire`) continue when
/// your executor polls them next.
///
/// Clones are the same clock.
///
/// ```
/// use std::time::Duration;
/// use redsem_core::Clock;
///
/// let clock = Clock::manual();
/// let before = clock.now();
/// clock.advance(Duration::from_secs(3600));
/// assert!(clock.now() - before >= Duration::from_secs(3600));
/// assert!(!Clock::system().is_manual());
/// ```
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<Manual>>);

/// The state of a manual clock.
#[derive(Debug, Default)]
pub(crate) struct Manual {
    /// Nanoseconds added to real time.
    offset: AtomicU64,
    /// Serialises `advance` calls.
    advancing: Mutex<()>,
}

impl Clock {
    /// Real time: what every real backend uses.
    ///
    /// ```
    /// use redsem_core::Clock;
    /// let clock = Clock::system();
    /// assert!(!clock.is_manual());
    /// assert_eq!(clock, Clock::default());
    /// ```
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that runs with real time and jumps forward on
    /// [`advance`](Clock::advance); for test backends.
    ///
    /// ```
    /// use redsem_core::Clock;
    /// let clock = Clock::manual();
    /// assert!(clock.is_manual());
    /// assert_eq!(clock, clock.clone()); // clones are the same clock
    /// ```
    pub fn manual() -> Clock {
        Clock(Some(Arc::default()))
    }

    /// Whether [`advance`](Clock::advance) moves this clock.
    ///
    /// ```
    /// use redsem_core::Clock;
    /// assert!(Clock::manual().is_manual());
    /// assert!(!Clock::system().is_manual());
    /// ```
    pub fn is_manual(&self) -> bool {
        self.0.is_some()
    }

    /// The current time on this clock.
    ///
    /// ```
    /// use redsem_core::Clock;
    /// use std::time::{Duration, Instant};
    /// let clock = Clock::manual();
    /// clock.advance(Duration::from_secs(60));
    /// assert!(clock.now() >= Instant::now() + Duration::from_secs(59));
    /// ```
    pub fn now(&self) -> Instant {
        let now = Instant::now();
        match &self.0 {
            None => now,
            Some(manual) => now + Duration::from_nanos(manual.offset.load(Ordering::Acquire)),
        }
    }

    /// How far this clock has been advanced in all.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let clock = redsem_core::Clock::manual();
    /// clock.advance(Duration::from_millis(5));
    /// assert_eq!(clock.advanced(), Duration::from_millis(5));
    /// ```
    pub fn advanced(&self) -> Duration {
        self.0.as_ref().map_or(Duration::ZERO, |m| {
            Duration::from_nanos(m.offset.load(Ordering::Acquire))
        })
    }

    /// Moves a manual clock forward by `by`, firing every redsem timer on
    /// it that falls due, one due time after the other, each time waiting
    /// until redsem's background work has settled. Does nothing to the
    /// system clock.
    ///
    /// Call it from a test, not from a future that redsem is waiting on.
    ///
    /// ```
    /// use redsem_core::{LockError, LockOptions, Mutex};
    /// use redsem_mock::MockBackend;
    /// use std::time::Duration;
    /// let redis = MockBackend::new(); // runs on a manual clock
    /// let options = LockOptions::builder().refresh_interval(Duration::ZERO).build()?;
    /// let mutex = Mutex::with_options(redis.clone(), "jobs", options)?;
    /// let guard = futures::executor::block_on(mutex.acquire())?;
    /// redis.time().advance(Duration::from_secs(11)); // past the 10 s lock timeout
    /// assert!(!guard.is_acquired());
    /// # Ok::<(), LockError>(())
    /// ```
    pub fn advance(&self, by: Duration) {
        let Some(manual) = &self.0 else { return };
        let _one_at_a_time = manual.advancing.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(driver) = driver() else {
            manual.raise_to(manual.offset().saturating_add(by));
            return;
        };
        let start = manual.offset();
        let end = start.saturating_add(by);
        let target = self
            .now()
            .checked_add(by)
            .unwrap_or_else(crate::time::far_future);
        while let Some(due) = driver.earliest_timer(self).filter(|due| *due <= target) {
            let step = due.saturating_duration_since(self.now());
            manual.raise_to(manual.offset().saturating_add(step).min(end));
            driver.settle();
        }
        manual.raise_to(end);
        driver.settle();
        crate::callbacks::settle();
    }

    /// Identifies the clock in the driver's timer table: 0 for the system
    /// clock.
    pub(crate) fn id(&self) -> usize {
        self.0.as_ref().map_or(0, |m| Arc::as_ptr(m) as usize)
    }
}

impl Manual {
    fn offset(&self) -> Duration {
        Duration::from_nanos(self.offset.load(Ordering::Acquire))
    }

    /// Moves the offset up to `to` (never back).
    fn raise_to(&self, to: Duration) {
        let nanos = u64::try_from(to.as_nanos()).unwrap_or(u64::MAX);
        self.offset.fetch_max(nanos, Ordering::AcqRel);
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::system()"),
            Some(_) => write!(f, "Clock::manual(advanced {:?})", self.advanced()),
        }
    }
}

impl PartialEq for Clock {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for Clock {}
