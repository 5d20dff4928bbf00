//! The acquire loop shared by every lock kind: attempts, backoff, clean-up
//! of failed or abandoned attempts, and `with_lock`.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::future::{select, Either};

use crate::backoff;
use crate::driver::driver;
use crate::error::{AcquireLimit, LockError};
use crate::fixed_id::{FixedIdClaim, Owner};
use crate::guard::LockGuard;
use crate::hold::{finish, Hold};
use crate::lock_core::DynCore;
use crate::observe;
use crate::options::Identity;
use crate::protocol::{Granted, Leftover, Refreshed, Retry};
use crate::shutdown::spawn_cleanup;
use crate::single::too_slow;
use crate::time::{sleep_until, within};
use crate::wait::Pause;

/// Whether acquire waits (retrying) or makes a single attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Wait,
    Try,
}

/// The smallest validity a new guard may have, as a fraction of the lock
/// timeout: an attempt answered so late that less is left counts as failed
/// (it is cleaned up and retried), so a guard is never handed out already
/// about to expire.
pub(crate) const MIN_VALIDITY_FRACTION: u32 = 10;

/// Cleans up in the background if the acquire future is dropped while an
/// attempt that may have taken the lock is in flight. It carries the
/// fixed-identifier claim, so the identifier is not reused before then.
struct InFlight<'a> {
    core: &'a Arc<DynCore>,
    id: &'a str,
    started: Instant,
    claim: &'a mut FixedIdClaim,
    armed: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.armed {
            clean_up_in_background(self.core, self.id, self.started, None, self.claim.take());
        }
    }
}

/// Removes whatever an attempt under `id` may have taken, retrying until
/// it would have expired by itself, then frees `claim`.
fn clean_up_in_background(
    core: &Arc<DynCore>,
    id: &str,
    started: Instant,
    leftover: Leftover,
    claim: FixedIdClaim,
) {
    claim.cleaning_up();
    let (core, id) = (core.clone(), id.to_owned());
    spawn_cleanup(Box::pin(async move {
        finish(leftover).await;
        clean_up(&core, &id, started).await;
        drop(claim);
    }));
}

/// When what an attempt started at `started` may have taken expires.
fn expiry(core: &DynCore, started: Instant) -> Instant {
    started
        .checked_add(core.options.lock_timeout)
        .unwrap_or_else(crate::time::far_future)
}

/// Releases `id` with `retry`; `true` when Redis confirmed it.
async fn clean_up_with(core: &DynCore, id: &str, retry: Retry) -> bool {
    let bound = core.options.command_timeout;
    let (result, leftover) = core.protocol.release(id, bound, retry).await;
    finish(leftover).await;
    result.is_ok()
}

async fn clean_up(core: &DynCore, id: &str, started: Instant) {
    let clock = core.protocol.clock();
    clean_up_with(core, id, Retry::few(clock, expiry(core, started))).await;
}

/// Claims the fixed identifier (a no-op for random ones), waiting until
/// `deadline` while a background clean-up under it finishes.
async fn claim(core: &Arc<DynCore>, deadline: Option<Instant>) -> Result<FixedIdClaim, LockError> {
    let Identity::Fixed(id) = &core.options.identity else {
        return Ok(FixedIdClaim::none());
    };
    let already_held = || LockError::AlreadyHeld {
        kind: core.protocol.kind(),
        key: core.protocol.key().to_owned(),
        identifier: id.clone(),
    };
    let wait = poll_fn(|cx| match core.fixed_id.try_claim(cx.waker()) {
        Ok(claim) => Poll::Ready(Ok(claim)),
        Err(Owner::CleaningUp) => Poll::Pending,
        Err(_) => Poll::Ready(Err(())),
    });
    let claimed = match deadline {
        None => wait.await,
        Some(deadline) => {
            let clock = core.protocol.clock();
            let left = deadline.saturating_duration_since(clock.now());
            within(clock, left, wait).await.unwrap_or(Err(()))
        }
    };
    claimed.map_err(|()| already_held())
}

/// One acquire (or one try).
pub(crate) async fn acquire(
    core: &Arc<DynCore>,
    mode: Mode,
) -> Result<Option<LockGuard>, LockError> {
    driver().map_err(|message| LockError::Background { message })?;
    let options = &core.options;
    let clock = core.protocol.clock();
    let begun = clock.now();
    let deadline = begun.checked_add(options.acquire_timeout);
    let mut claim = claim(core, deadline).await?;
    let fixed = matches!(options.identity, Identity::Fixed(_));
    let ttl = options.lock_timeout_ms;
    let bound = options.command_timeout;
    let mut id = options.identity.make();

    if core.external_pending.load(Ordering::Acquire) {
        return take_over(core, mode, id, claim).await;
    }

    let notifications = match mode {
        Mode::Wait => core.protocol.notifications(),
        Mode::Try => None,
    };
    let mut pause = Pause::new(notifications, core.protocol.key(), clock);
    pause.queue_first(options.retry_interval, deadline).await;

    let (mut attempts, mut failed, mut in_a_row) = (0u32, 0u32, 0u32);
    let mut last_error = None;
    loop {
        // At the deadline, a queued waiter skips its last attempt when
        // another of this process has just tried: 1,000 waiters timing out
        // together would otherwise send 1,000 calls at once.
        let at_deadline = deadline.is_some_and(|d| clock.now() >= d);
        if at_deadline && pause.others_just_tried(options.retry_interval) {
            let limit = AcquireLimit::Timeout(options.acquire_timeout);
            return Err(core.timeout_error(limit, attempts, failed, last_error));
        }
        attempts = attempts.saturating_add(1);
        pause.before_attempt();
        let started = clock.now();
        let mut in_flight = InFlight {
            core,
            id: &id,
            started,
            claim: &mut claim,
            armed: true,
        };
        let (outcome, leftover) = core.protocol.acquire(&id, ttl, started, bound).await;
        let min_left = options.lock_timeout / MIN_VALIDITY_FRACTION;
        let outcome = match outcome {
            Ok(Some(granted))
                if granted.valid_until.saturating_duration_since(clock.now()) < min_left =>
            {
                Err(core.backend_error("acquire", too_slow(clock, started)))
            }
            other => other,
        };
        let failure_delay = match outcome {
            Ok(Some(granted)) => {
                in_flight.armed = false;
                drop(in_flight);
                if let Some(job) = leftover {
                    spawn_cleanup(job);
                }
                let waited = clock.now().saturating_duration_since(begun);
                observe::acquired(core.protocol.kind(), core.protocol.key(), attempts, waited);
                let stats = (attempts, waited);
                let hold = Hold::start(core.clone(), id, started, granted, claim.take(), stats);
                return Ok(Some(LockGuard::new(hold)));
            }
            Ok(None) => {
                in_a_row = 0;
                let undoing = leftover.is_some();
                settle(&mut in_flight, leftover, fixed).await;
                drop(in_flight);
                // The undo of a partial attempt runs in the background for
                // a random identifier: the next attempt must not use the
                // same one, or the late undo would delete its hold.
                if undoing && !fixed {
                    id = options.identity.make();
                }
                None
            }
            // The failed call may still have taken the lock (in part). A
            // fixed identifier is cleaned up before it is used again; a
            // random one in the background, and replaced.
            Err(e) if is_retryable(&e) => {
                failed = failed.saturating_add(1);
                in_a_row = in_a_row.saturating_add(1);
                last_error = Some(e);
                if fixed {
                    // The same identifier is used next: its clean-up must be
                    // confirmed, or what it may have taken must have expired,
                    // before a late delete could hit the next hold.
                    finish(leftover).await;
                    let expires = expiry(core, started);
                    if !clean_up_with(core, &id, Retry::until(clock, expires)).await {
                        let wake = deadline.map_or(expires, |d| d.min(expires));
                        sleep_until(clock, wake).await;
                    }
                    in_flight.armed = false;
                } else {
                    in_flight.armed = false;
                    drop(in_flight);
                    clean_up_in_background(core, &id, started, leftover, FixedIdClaim::none());
                    id = options.identity.make();
                }
                Some(backoff::after_failure(
                    options.retry_interval,
                    in_a_row,
                    backoff::FAILURE_CAP,
                ))
            }
            Err(e) => {
                in_flight.armed = false;
                let claim = in_flight.claim.take();
                clean_up_in_background(core, &id, started, leftover, claim);
                return Err(e);
            }
        };

        if mode == Mode::Try {
            return match last_error {
                Some(e) if in_a_row > 0 => Err(e),
                _ => Ok(None),
            };
        }
        let limit = if options.max_attempts.is_some_and(|max| attempts >= max) {
            Some(AcquireLimit::Attempts(attempts))
        } else if deadline.is_some_and(|d| clock.now() >= d) {
            Some(AcquireLimit::Timeout(options.acquire_timeout))
        } else {
            None
        };
        if let Some(limit) = limit {
            let last_error = match last_error {
                // The head of this process's queue reads the key for all
                // (1,000 waiters timing out must not make 1,000 reads).
                None if pause.queued_behind() => None,
                None => explain_busy(core).await,
                some => some,
            };
            return Err(core.timeout_error(limit, attempts, failed, last_error));
        }
        // Never pause past the deadline: the last attempt happens at it.
        match failure_delay {
            None => pause.after_busy(options.retry_interval, deadline).await,
            Some(delay) => {
                let until = deadline.unwrap_or_else(crate::time::far_future);
                pause.sleep(delay, until).await
            }
        }
    }
}

/// When every attempt found the lock busy: a foreign value at the key (one
/// read, only now) explains why it never came free.
async fn explain_busy(core: &DynCore) -> Option<LockError> {
    let why = core
        .protocol
        .foreign_data(core.options.command_timeout)
        .await?;
    let source = crate::BackendError::new(crate::BackendErrorKind::Server, why);
    Some(core.backend_error("acquire", source))
}

/// After a busy answer: runs what the attempt left behind (the undo of a
/// partial Redlock attempt) before a fixed identifier is reused, or in the
/// background for a random one.
async fn settle(in_flight: &mut InFlight<'_>, leftover: Leftover, fixed: bool) {
    if fixed {
        finish(leftover).await;
    } else if let Some(job) = leftover {
        spawn_cleanup(job);
    }
    in_flight.armed = false;
}

/// The first acquire of an `acquired_externally` lock: take over the hold
/// made elsewhere under the fixed identifier, by refreshing it, then giving
/// it a fencing token of its own (the old holder's token is then stale).
async fn take_over(
    core: &Arc<DynCore>,
    mode: Mode,
    id: String,
    claim: FixedIdClaim,
) -> Result<Option<LockGuard>, LockError> {
    let options = &core.options;
    let started = core.protocol.clock().now();
    let (refreshed, leftover) = core
        .protocol
        .refresh(
            &id,
            options.lock_timeout_ms,
            started,
            options.command_timeout,
            Arc::new(|| true),
        )
        .await;
    // Always a fixed identifier: the undo of a failed takeover finishes
    // before it can be used again.
    finish(leftover).await;
    let token = match refreshed? {
        Refreshed::Extended {
            valid_until,
            replicas,
        } if !options.fencing_tokens => Some(Granted {
            valid_until,
            token: 0,
            replicas,
        }),
        Refreshed::Extended {
            valid_until,
            replicas,
        } => {
            let (token, leftover) = core
                .protocol
                .issue_token(&id, options.command_timeout)
                .await;
            finish(leftover).await;
            token?.map(|token| Granted {
                valid_until,
                token,
                replicas,
            })
        }
        Refreshed::Lost(_) => None,
    };
    match token {
        Some(granted) => {
            core.external_pending.store(false, Ordering::Release);
            let stats = (1, Duration::ZERO);
            let hold = Hold::start(core.clone(), id, started, granted, claim, stats);
            Ok(Some(LockGuard::new(hold)))
        }
        None if mode == Mode::Try => Ok(None),
        None => Err(core.timeout_error(AcquireLimit::Attempts(1), 1, 0, None)),
    }
}

fn is_retryable(err: &LockError) -> bool {
    match err {
        LockError::Backend { source, .. } => source.is_retryable(),
        // Unless errors that will repeat (a permission, a wrong type) make
        // a quorum impossible for good.
        LockError::QuorumNotReached {
            total,
            quorum,
            failures,
            ..
        } => failures.iter().filter(|f| !f.retryable).count() <= total - quorum,
        _ => false,
    }
}

/// `with_lock` whose work gets a [`LockStatus`](crate::LockStatus) of the
/// hold.
pub(crate) async fn with_lock_status<F, Fut, T>(
    core: &Arc<DynCore>,
    work: F,
) -> Result<T, LockError>
where
    F: FnOnce(crate::LockStatus) -> Fut,
    Fut: Future<Output = T>,
{
    let guard = acquire_wait(core).await?;
    let status = guard.status();
    let outcome = {
        let work = pin!(work(status));
        let lost = pin!(guard.lost());
        match select(work, lost).await {
            Either::Left((value, _)) => Ok(value),
            Either::Right((lost, _)) => Err(lost),
        }
    };
    let _ = guard.release().await;
    outcome
}

/// Who holds the lock, per node.
pub(crate) async fn inspect(core: &DynCore) -> crate::Inspection {
    let options = &core.options;
    let nodes = core
        .protocol
        .inspect(options.lock_timeout_ms, options.command_timeout)
        .await;
    crate::Inspection {
        key: core.protocol.key().to_owned(),
        nodes,
    }
}

/// Acquires, waiting as the options allow.
pub(crate) async fn acquire_wait(core: &Arc<DynCore>) -> Result<LockGuard, LockError> {
    let result = match acquire(core, Mode::Wait).await {
        Ok(Some(guard)) => Ok(guard),
        // Mode::Wait ends with a guard or an error; this is its last attempt's
        // "busy" seen as the limit it is.
        Ok(None) => Err(core.timeout_error(AcquireLimit::Attempts(1), 1, 0, None)),
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        observe::acquire_gave_up(core.protocol.kind(), core.protocol.key(), e);
    }
    result
}

/// Runs `work` while holding the lock; drops it with the loss error if the
/// lock is lost first. Releases at the end; once the work has finished its
/// result is kept even if the release fails (a loss found then is reported
/// to `on_lock_lost`; an unanswered release lets the hold expire).
pub(crate) async fn with_lock<F, Fut, T>(core: &Arc<DynCore>, work: F) -> Result<T, LockError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    with_lock_status(core, |_| work()).await
}
