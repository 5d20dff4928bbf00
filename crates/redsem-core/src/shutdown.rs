//! Background clean-up that a process should let finish before it exits:
//! releases of dropped guards and clean-ups of abandoned attempts.

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::driver::{driver, Job};
use crate::time::sleep_until;

static PENDING: AtomicUsize = AtomicUsize::new(0);
static WAITERS: Mutex<Vec<Waker>> = Mutex::new(Vec::new());

/// Runs `job` on redsem's background thread, counted until it finishes.
pub(crate) fn spawn_cleanup(job: Job) {
    let Ok(driver) = driver() else { return };
    PENDING.fetch_add(1, Ordering::AcqRel);
    driver.spawn(Box::pin(async move {
        let _done = Done;
        job.await;
    }));
}

/// Decrements the count when the job ends, also if it panics or is dropped.
struct Done;

impl Drop for Done {
    fn drop(&mut self) {
        if PENDING.fetch_sub(1, Ordering::AcqRel) == 1 {
            let waiters = std::mem::take(&mut *WAITERS.lock().unwrap_or_else(|e| e.into_inner()));
            waiters.into_iter().for_each(Waker::wake);
        }
    }
}

/// Waits (at most `timeout`) until every background release has finished:
/// `true` when none is left. Call it before the process exits, so a guard
/// dropped just before is released rather than left to expire after its
/// lock timeout.
///
/// Background releases retry a failing Redis until the hold would expire by
/// itself, so with Redis down this waits the full `timeout`.
///
/// ```
/// use std::time::Duration;
/// use redsem_core::Mutex;
/// use redsem_mock::MockBackend;
/// # futures::executor::block_on(async {
/// let redis = MockBackend::new();
/// let guard = Mutex::new(redis.clone(), "jobs")?.acquire().await?;
/// drop(guard); // released in the background
/// assert!(redsem_core::flush(Duration::from_secs(5)).await);
/// assert_eq!(redis.get("mutex:jobs"), None);
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
///
/// # Cancel safety
///
/// Cancel safe: dropping the future stops only the waiting.
pub async fn flush(timeout: Duration) -> bool {
    let deadline = Instant::now().checked_add(timeout);
    let drained = poll_fn(|cx| {
        if PENDING.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
        WAITERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cx.waker().clone());
        if PENDING.load(Ordering::Acquire) == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    match deadline {
        None => {
            drained.await;
            true
        }
        Some(deadline) => {
            let drained = std::pin::pin!(drained);
            let timer = std::pin::pin!(sleep_until(&crate::Clock::system(), deadline));
            matches!(
                futures::future::select(drained, timer).await,
                futures::future::Either::Left(_)
            )
        }
    }
}
