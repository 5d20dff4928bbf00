//! One acquisition's life after acquire, as one state machine:
//!
//! ```text
//!            refresh ok / refresh failed (retried, backing off)
//!            +----+
//!            v    |
//!  acquire -> Held ----- release() or drop -----> Releasing --> Released
//!            |  |                                    |
//!            |  +-- detach() ---------------------> Released (hold left in Redis)
//!            |
//!            +-- refresh says gone / nothing confirmed before valid_until
//!                / expired after stop_refresh  --> lost (reported once)
//! ```
//!
//! A loss is reported exactly once, whichever path finds it (a refresh, the
//! expiry timer, or a release that finds the hold gone): `is_acquired()`
//! turns false, `lost()` resolves, `on_lock_lost` runs on redsem's callback
//! thread. A refresh that fails is "unknown", never "lost": it is retried
//! until the hold's validity runs out. Refresh and release never overlap
//! (the `gate`), so a release can never be undone by a refresh in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::backoff;
use crate::callbacks;
use crate::clock::Clock;
use crate::driver::{driver, Driver, Fire, TimerKey};
use crate::error::{LockError, LostReason};
use crate::fixed_id::FixedIdClaim;
use crate::lock_core::DynCore;
use crate::observe;
use crate::protocol::{Granted, Leftover, Refreshed, Retry};
use crate::shutdown::spawn_cleanup;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Held,
    /// Release started (explicitly or by drop) and has not finished.
    Releasing,
    Released,
}

#[derive(Debug)]
struct HoldState {
    phase: Phase,
    /// Set once, when the loss is reported.
    lost: Option<LostReason>,
    refreshing: bool,
    valid_until: Instant,
    /// The pending refresh or expiry timer, with the driver holding it.
    timer: Option<(Arc<Driver>, TimerKey)>,
    /// Failed refreshes in a row, and the last one's error.
    refresh_failures: u32,
    last_error: Option<String>,
    lost_wakers: HashMap<u64, Waker>,
    next_waiter: u64,
    claim: FixedIdClaim,
    /// Replicas that confirmed the last acquire or refresh (synced grants).
    replicas: Option<crate::ReplicaAcks>,
}

/// Shared by the guard, the driver's timer and background jobs.
pub(crate) struct Hold {
    pub(crate) core: Arc<DynCore>,
    pub(crate) id: String,
    /// The fencing token of this acquisition.
    pub(crate) token: u64,
    acquired_at: Instant,
    /// How the acquire went: attempts made, time waited.
    pub(crate) attempts: u32,
    pub(crate) waited: Duration,
    gate: futures::lock::Mutex<()>,
    state: Mutex<HoldState>,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("key", &self.core.protocol.key())
            .field("id", &crate::options::Redacted(&self.id))
            .field("state", &*self.lock())
            .finish()
    }
}

/// What a release found.
pub(crate) enum Released {
    /// Removed while held.
    Ok,
    /// Already released (by an earlier call).
    Already,
    /// The hold was lost, before or at release.
    Lost(LostReason),
    /// Redis gave no answer in time; the hold expires by itself.
    Failed(LockError),
}

impl Hold {
    /// A new hold, with its first refresh (or expiry check) scheduled.
    pub(crate) fn start(
        core: Arc<DynCore>,
        id: String,
        acquired_at: Instant,
        granted: Granted,
        claim: FixedIdClaim,
        (attempts, waited): (u32, Duration),
    ) -> Arc<Hold> {
        let refreshing = core.options.refresh_interval.is_some();
        // Without fencing the protocol's token is a placeholder.
        let token = if core.options.fencing_tokens {
            granted.token
        } else {
            0
        };
        let hold = Arc::new(Hold {
            core,
            id,
            token,
            acquired_at,
            attempts,
            waited,
            gate: futures::lock::Mutex::new(()),
            state: Mutex::new(HoldState {
                phase: Phase::Held,
                lost: None,
                refreshing,
                valid_until: granted.valid_until,
                timer: None,
                refresh_failures: 0,
                last_error: None,
                lost_wakers: HashMap::new(),
                next_waiter: 0,
                claim,
                replicas: granted.replicas,
            }),
        });
        let mut st = hold.lock();
        hold.schedule(&mut st, acquired_at);
        drop(st);
        observe::hold_started(hold.kind());
        hold
    }

    fn clock(&self) -> &Clock {
        self.core.protocol.clock()
    }

    fn kind(&self) -> crate::LockKind {
        self.core.protocol.kind()
    }

    fn key(&self) -> &str {
        self.core.protocol.key()
    }

    /// Whether this hold is still held, for work that outlives a refresh.
    fn still_held(self: &Arc<Self>) -> crate::protocol::StillHeld {
        let hold = Arc::downgrade(self);
        Arc::new(move || {
            hold.upgrade().is_some_and(|h| {
                let st = h.lock();
                st.phase == Phase::Held && st.lost.is_none()
            })
        })
    }

    fn lock(&self) -> MutexGuard<'_, HoldState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms the timer: the next refresh (sooner after a failed one), or the
    /// expiry when refresh is off. A held hold always has a timer.
    fn schedule(self: &Arc<Self>, st: &mut HoldState, now: Instant) {
        let options = &self.core.options;
        let at = match (st.refreshing, options.refresh_interval) {
            (true, Some(_)) if st.refresh_failures > 0 => {
                let cap = options.lock_timeout / 20;
                let wait = backoff::after_failure(options.retry_interval, st.refresh_failures, cap);
                now.checked_add(wait)
                    .unwrap_or(st.valid_until)
                    .min(st.valid_until)
            }
            (true, Some(interval)) => {
                next_tick(self.acquired_at, interval, now).min(st.valid_until)
            }
            _ => st.valid_until,
        };
        let driver = match st.timer.take() {
            Some((driver, old)) => {
                driver.cancel_timer(old);
                driver
            }
            None => match driver() {
                Ok(driver) => driver,
                Err(_) => return,
            },
        };
        let hold = self.clone();
        let start = move || -> crate::driver::Job { Box::pin(hold.tick()) };
        let key = driver.add_timer(self.clock(), at, Fire::Start(Box::new(start)));
        st.timer = Some((driver, key));
    }

    fn cancel_timer(st: &mut HoldState) {
        if let Some((driver, key)) = st.timer.take() {
            driver.cancel_timer(key);
        }
    }

    /// A timer fired: refresh, or report the loss.
    async fn tick(self: Arc<Self>) {
        let _gate = self.gate.lock().await;
        let (refreshing, valid_until) = {
            let mut st = self.lock();
            st.timer = None;
            if st.phase != Phase::Held || st.lost.is_some() {
                return;
            }
            (st.refreshing, st.valid_until)
        };
        let now = self.clock().now();
        if now >= valid_until {
            if !refreshing {
                self.report_loss(LostReason::Expired);
                return;
            }
            let last_error = self.lock().last_error.take();
            self.report_loss(LostReason::Unconfirmed { last_error });
            // The hold may still exist if Redis was only slow: remove it.
            let bound = self.core.options.command_timeout;
            let deadline = self.clock().now().checked_add(bound).unwrap_or(now);
            let retry = Retry::few(self.clock(), deadline);
            let (_, leftover) = self.core.protocol.release(&self.id, bound, retry).await;
            finish(leftover).await;
            return;
        }
        if !refreshing {
            let mut st = self.lock();
            self.schedule(&mut st, now);
            return;
        }
        let options = &self.core.options;
        // A retry after a failure gets a tighter bound, so a call lost in a
        // silent outage cannot use up the validity that is left.
        let retrying = self.lock().refresh_failures > 0;
        let bound = if retrying {
            options.command_timeout.min(options.lock_timeout / 10)
        } else {
            options.command_timeout
        };
        let bound = bound.min(valid_until - now);
        let (outcome, leftover) = self
            .core
            .protocol
            .refresh(
                &self.id,
                options.lock_timeout_ms,
                now,
                bound,
                self.still_held(),
            )
            .await;
        {
            let mut st = self.lock();
            match outcome {
                Ok(Refreshed::Extended {
                    valid_until,
                    replicas,
                }) => {
                    st.valid_until = st.valid_until.max(valid_until);
                    st.replicas = replicas.or(st.replicas);
                    if st.refresh_failures > 0 {
                        observe::refresh_recovered(self.kind(), self.key(), st.refresh_failures);
                    }
                    st.refresh_failures = 0;
                    st.last_error = None;
                }
                Ok(Refreshed::Lost(reason)) => {
                    drop(st);
                    self.report_loss(reason);
                    spawn_leftover(leftover);
                    return;
                }
                Err(e) => {
                    st.refresh_failures = st.refresh_failures.saturating_add(1);
                    observe::refresh_failed(self.kind(), self.key(), st.refresh_failures, &e);
                    st.last_error = Some(e.to_string());
                }
            }
            if st.phase == Phase::Held && st.lost.is_none() {
                self.schedule(&mut st, self.clock().now());
            }
        }
        // Calls still in flight on slow nodes finish in the background.
        spawn_leftover(leftover);
    }

    /// Reports the loss, once: `is_acquired` turns false, `lost()`
    /// resolves, the callback is queued. `false` if it was reported before.
    pub(crate) fn report_loss(&self, reason: LostReason) -> bool {
        let wakers = {
            let mut st = self.lock();
            if st.lost.is_some() || st.phase == Phase::Released {
                return false;
            }
            st.lost = Some(reason.clone());
            Self::cancel_timer(&mut st);
            std::mem::take(&mut st.lost_wakers)
        };
        wakers.into_values().for_each(Waker::wake);
        observe::lost(self.kind(), self.key(), &reason);
        if let Some(callback) = &self.core.options.on_lock_lost {
            callbacks::report(callback.clone(), self.core.lost_error(reason));
        }
        true
    }

    pub(crate) fn is_acquired(&self) -> bool {
        let st = self.lock();
        st.phase == Phase::Held && st.lost.is_none() && self.clock().now() < st.valid_until
    }

    pub(crate) fn valid_until(&self) -> Instant {
        self.lock().valid_until
    }

    pub(crate) fn replicas(&self) -> Option<crate::ReplicaAcks> {
        self.lock().replicas
    }

    /// Stops refreshing; the hold then expires at `valid_until`.
    pub(crate) fn stop_refresh(self: &Arc<Self>) {
        let mut st = self.lock();
        if st.refreshing && st.phase == Phase::Held && st.lost.is_none() {
            st.refreshing = false;
            st.refresh_failures = 0;
            self.schedule(&mut st, self.clock().now());
        }
    }

    /// The loss, once reported; otherwise registers `waker` under the
    /// waiter's `slot` (one entry per waiting future, removed when it is
    /// dropped).
    pub(crate) fn poll_lost(&self, slot: &mut Option<u64>, waker: &Waker) -> Option<LostReason> {
        let mut st = self.lock();
        if let Some(reason) = &st.lost {
            return Some(reason.clone());
        }
        let key = *slot.get_or_insert_with(|| {
            st.next_waiter += 1;
            st.next_waiter
        });
        match st.lost_wakers.get_mut(&key) {
            Some(w) if w.will_wake(waker) => {}
            Some(w) => *w = waker.clone(),
            None => {
                st.lost_wakers.insert(key, waker.clone());
            }
        }
        None
    }

    /// Forgets a waiting `lost()` future.
    pub(crate) fn forget_waiter(&self, slot: u64) {
        self.lock().lost_wakers.remove(&slot);
    }

    /// Releases: waits out any refresh in flight, removes the hold (retrying
    /// a failing Redis until the hold would expire anyway), and reports a
    /// loss the release finds. `background` marks the fixed identifier as
    /// being cleaned up, so a new acquire waits for it.
    pub(crate) async fn release(&self, background: bool) -> Released {
        let prior = {
            let mut st = self.lock();
            // Releasing: an explicit release whose future was dropped; this
            // (background) release takes over.
            if st.phase == Phase::Released {
                return Released::Already;
            }
            st.phase = Phase::Releasing;
            Self::cancel_timer(&mut st);
            if background {
                st.claim.cleaning_up();
            }
            st.lost.clone()
        };
        let _gate = self.gate.lock().await;
        let options = &self.core.options;
        let bound = options.command_timeout;
        let now = self.clock().now();
        let deadline = self
            .valid_until()
            .max(now.checked_add(bound).unwrap_or(now));
        let retry = Retry::until(self.clock(), deadline);
        let (outcome, leftover) = self.core.protocol.release(&self.id, bound, retry).await;
        let released = match (prior, outcome) {
            (Some(reason), _) => Released::Lost(reason),
            (None, Ok(true)) => Released::Ok,
            (None, Ok(false)) => {
                self.report_loss(LostReason::Gone);
                Released::Lost(LostReason::Gone)
            }
            (None, Err(e)) => Released::Failed(e),
        };
        let claim = {
            let mut st = self.lock();
            st.phase = Phase::Released;
            st.claim.take()
        };
        // Nodes still being retried keep the fixed identifier busy.
        if leftover.is_some() {
            claim.cleaning_up();
            spawn_cleanup(Box::pin(async move {
                finish(leftover).await;
                drop(claim);
            }));
        }
        released
    }

    /// Ends local ownership without releasing: no refresh, no expiry
    /// report, no release on drop.
    pub(crate) fn detach(&self) {
        let claim = {
            let mut st = self.lock();
            Self::cancel_timer(&mut st);
            st.phase = Phase::Released;
            st.claim.take()
        };
        drop(claim);
    }

    /// Releases in the background (a guard dropped without `release`).
    pub(crate) fn release_in_background(self: Arc<Self>) {
        {
            let st = self.lock();
            if st.phase == Phase::Released {
                return;
            }
            st.claim.cleaning_up();
        }
        spawn_cleanup(Box::pin(async move {
            if let Released::Failed(e) = self.release(true).await {
                observe::background_release_failed(self.kind(), self.key(), &e);
            }
        }));
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        observe::hold_ended(self.kind());
    }
}

/// Runs what an operation left behind in the background.
pub(crate) fn spawn_leftover(leftover: Leftover) {
    if let Some(job) = leftover {
        spawn_cleanup(job);
    }
}

/// Runs what an operation left behind.
pub(crate) async fn finish(leftover: Leftover) {
    if let Some(job) = leftover {
        job.await;
    }
}

/// The first tick `acquired_at + k * interval` after `now` (k ≥ 1). Ticks
/// missed while a refresh ran are skipped, not queued.
fn next_tick(acquired_at: Instant, interval: Duration, now: Instant) -> Instant {
    let step = interval.as_nanos().max(1);
    let since = now.saturating_duration_since(acquired_at).as_nanos();
    let offset = (since / step + 1).saturating_mul(step);
    let offset = Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX));
    acquired_at
        .checked_add(offset)
        .unwrap_or_else(crate::time::far_future)
}

#[cfg(test)]
mod tests {
    use super::next_tick;
    use std::time::{Duration, Instant};

    #[test]
    fn ticks_skip_missed_intervals() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(next_tick(t0, ms(80), t0), t0 + ms(80));
        assert_eq!(next_tick(t0, ms(80), t0 + ms(79)), t0 + ms(80));
        assert_eq!(next_tick(t0, ms(80), t0 + ms(80)), t0 + ms(160));
        // a refresh that ran from 80 to 180 ms skips the tick at 160
        assert_eq!(next_tick(t0, ms(80), t0 + ms(180)), t0 + ms(240));
        // tiny intervals over long holds neither wrap nor overflow
        let us = Duration::from_micros(1);
        let later = t0 + Duration::from_secs(5 * 3600);
        assert_eq!(next_tick(t0, us, later), later + us);
    }
}
