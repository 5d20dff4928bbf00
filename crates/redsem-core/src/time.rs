//! Sleeping and per-call time bounds on the driver's timers, so core needs
//! no async runtime of its own.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use std::any::Any;
use std::panic::AssertUnwindSafe;

use futures::future::{select, Either};
use futures::FutureExt;

use crate::error::{BackendError, BackendErrorKind};

use crate::clock::Clock;
use crate::driver::{driver, Driver, Fire, TimerKey};
use std::sync::Arc;

/// A future that completes at `deadline` on its clock.
pub(crate) struct Sleep {
    clock: Clock,
    deadline: Instant,
    /// The registered timer, with the driver that holds it (looking the
    /// driver up again costs a system call: see `PerProcess`).
    key: Option<(Arc<Driver>, TimerKey)>,
}

/// Completes at `deadline` on `clock`.
pub(crate) fn sleep_until(clock: &Clock, deadline: Instant) -> Sleep {
    Sleep {
        clock: clock.clone(),
        deadline,
        key: None,
    }
}

/// Completes after `duration` on `clock`.
pub(crate) fn sleep(clock: &Clock, duration: Duration) -> Sleep {
    let deadline = clock.now().checked_add(duration).unwrap_or_else(far_future);
    sleep_until(clock, deadline)
}

/// An instant so far ahead that it never comes in practice.
pub(crate) fn far_future() -> Instant {
    // 30 years; `Instant + Duration::MAX` would overflow.
    Instant::now() + Duration::from_secs(30 * 365 * 24 * 3600)
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now() >= self.deadline {
            self.key = None;
            return Poll::Ready(());
        }
        match &self.key {
            Some((driver, key)) if driver.update_waker(*key, cx.waker()) => Poll::Pending,
            Some(_) => {
                // Fired; wakeups can race the clock reading above.
                self.key = None;
                Poll::Ready(())
            }
            None => {
                let Ok(driver) = driver() else {
                    // Without the background thread nothing could wake us;
                    // the deadline is treated as reached rather than
                    // hanging forever.
                    return Poll::Ready(());
                };
                let fire = Fire::Wake(cx.waker().clone());
                let key = driver.add_timer(&self.clock, self.deadline, fire);
                self.key = Some((driver, key));
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((driver, key)) = self.key.take() {
            driver.cancel_timer(key);
        }
    }
}

/// The output of `fut`, or `Err(Elapsed)` when `bound` passes first on
/// `clock` (the future is then dropped).
pub(crate) async fn within<F: Future>(
    clock: &Clock,
    bound: Duration,
    fut: F,
) -> Result<F::Output, Elapsed> {
    let fut = std::pin::pin!(fut);
    match select(fut, sleep(clock, bound)).await {
        Either::Left((out, _)) => Ok(out),
        Either::Right(((), _)) => Err(Elapsed),
    }
}

/// Runs one backend call: its result, a timeout error when `bound` passes
/// first, or an error when the call panics. A backend whose client panics
/// (for example a tokio client polled after its runtime shut down) must not
/// take redsem's background thread, or the caller, down with it.
pub(crate) async fn bounded_call<F, T>(
    clock: &Clock,
    bound: Duration,
    call: F,
) -> Result<T, BackendError>
where
    F: Future<Output = Result<T, BackendError>>,
{
    match within(clock, bound, AssertUnwindSafe(call).catch_unwind()).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(BackendError::new(
            BackendErrorKind::Other,
            format!("the backend panicked: {}", panic_message(&*panic)),
        )),
        Err(Elapsed) => Err(BackendError::timeout(bound)),
    }
}

/// The message of a caught panic, when it has one.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// A time bound passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_waits_about_the_duration() {
        let start = Instant::now();
        futures::executor::block_on(sleep(&Clock::system(), Duration::from_millis(30)));
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(30), "{took:?}");
    }

    #[test]
    fn within_bounds_a_pending_future() {
        let out = futures::executor::block_on(within(
            &Clock::system(),
            Duration::from_millis(20),
            futures::future::pending::<()>(),
        ));
        assert_eq!(out, Err(Elapsed));
        let out =
            futures::executor::block_on(within(&Clock::system(), Duration::from_secs(5), async {
                7
            }));
        assert_eq!(out, Ok(7));
    }

    #[test]
    fn bounded_call_turns_panics_and_timeouts_into_errors() {
        let clock = Clock::system();
        let panicking = bounded_call(&clock, Duration::from_secs(1), async {
            if true {
                panic!("client gone");
            }
            Ok::<(), BackendError>(())
        });
        let err = futures::executor::block_on(panicking).unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Other);
        assert!(err.message().contains("client gone"), "{err}");
        let hanging = bounded_call(
            &clock,
            Duration::from_millis(10),
            futures::future::pending::<Result<(), _>>(),
        );
        let err = futures::executor::block_on(hanging).unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Timeout);
    }

    #[test]
    fn many_concurrent_sleeps_all_complete() {
        let clock = Clock::system();
        let sleeps = (0..200u64).map(|i| sleep(&clock, Duration::from_millis(i % 17)));
        futures::executor::block_on(futures::future::join_all(sleeps));
    }
}
