//! One acquisition's life after acquire: refresh ticks, loss detection,
//! release. The public face is [`LockGuard`](crate::LockGuard).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::driver::{driver, Fire, TimerKey};
use crate::engine::DynCore;
use crate::error::{LockError, LostReason};
use crate::protocol::Refreshed;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Held,
    Lost(LostReason),
    /// Release started (explicitly or by drop) and has not finished.
    Releasing,
    Released,
}

#[derive(Debug)]
struct HoldState {
    phase: Phase,
    refreshing: bool,
    valid_until: Instant,
    timer: Option<TimerKey>,
    last_error: Option<String>,
    lost_wakers: Vec<Waker>,
}

/// Shared by the guard, the driver's timer and background jobs.
pub(crate) struct Hold {
    pub(crate) core: Arc<DynCore>,
    pub(crate) id: String,
    acquired_at: Instant,
    /// Held across every refresh and release call, so a release never runs
    /// while a refresh (which may re-create a Redlock hold) is in flight.
    gate: futures::lock::Mutex<()>,
    state: Mutex<HoldState>,
    /// Whether this hold owns the lock instance's fixed identifier.
    claims_fixed_id: AtomicBool,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("key", &self.core.protocol.key())
            .field("id", &self.id)
            .field("state", &*self.lock())
            .finish()
    }
}

/// What `begin_release` found.
pub(crate) enum Prior {
    Held,
    Lost(LostReason),
    /// Another release already finished.
    Released,
}

impl Hold {
    /// A new hold, with its first refresh (or expiry check) scheduled.
    pub(crate) fn start(
        core: Arc<DynCore>,
        id: String,
        acquired_at: Instant,
        valid_until: Instant,
        claims_fixed_id: bool,
    ) -> Arc<Hold> {
        let refreshing = core.options.refresh_interval.is_some();
        let hold = Arc::new(Hold {
            core,
            id,
            acquired_at,
            gate: futures::lock::Mutex::new(()),
            state: Mutex::new(HoldState {
                phase: Phase::Held,
                refreshing,
                valid_until,
                timer: None,
                last_error: None,
                lost_wakers: Vec::new(),
            }),
            claims_fixed_id: AtomicBool::new(claims_fixed_id),
        });
        let mut st = hold.lock();
        hold.schedule(&mut st, acquired_at);
        drop(st);
        hold
    }

    fn lock(&self) -> MutexGuard<'_, HoldState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms the timer for the next refresh, or for the expiry when refresh
    /// is off: a hold is never left without a timer while held.
    fn schedule(self: &Arc<Self>, st: &mut HoldState, now: Instant) {
        let at = match (st.refreshing, self.core.options.refresh_interval) {
            (true, Some(interval)) => {
                next_tick(self.acquired_at, interval, now).min(st.valid_until)
            }
            _ => st.valid_until,
        };
        let Ok(driver) = driver() else { return };
        if let Some(old) = st.timer.take() {
            driver.cancel_timer(old);
        }
        let hold = self.clone();
        let start = move || -> crate::driver::Job { Box::pin(hold.tick()) };
        st.timer = Some(driver.add_timer(at, Fire::Start(Box::new(start))));
    }

    fn cancel_timer(st: &mut HoldState) {
        if let (Some(key), Ok(driver)) = (st.timer.take(), driver()) {
            driver.cancel_timer(key);
        }
    }

    /// A timer fired: refresh, or declare the hold lost.
    async fn tick(self: Arc<Self>) {
        let _gate = self.gate.lock().await;
        let (refreshing, valid_until) = {
            let mut st = self.lock();
            st.timer = None;
            if st.phase != Phase::Held {
                return;
            }
            (st.refreshing, st.valid_until)
        };
        let now = Instant::now();
        if now >= valid_until {
            if !refreshing {
                self.mark_lost(LostReason::Expired);
                return;
            }
            let last_error = self.lock().last_error.take();
            self.mark_lost(LostReason::Unconfirmed { last_error });
            // The hold may still exist if Redis was only slow: remove it.
            let _ = self.release_unguarded().await;
            return;
        }
        if refreshing {
            let options = &self.core.options;
            let bound = options.command_timeout.min(valid_until - now);
            let outcome = self
                .core
                .protocol
                .refresh(&self.id, options.lock_timeout_ms, now, bound)
                .await;
            let mut st = self.lock();
            match outcome {
                Ok(Refreshed::Extended { valid_until }) => {
                    st.valid_until = st.valid_until.max(valid_until);
                    st.last_error = None;
                }
                Ok(Refreshed::Lost(reason)) => {
                    drop(st);
                    self.mark_lost(reason);
                    return;
                }
                Err(e) => st.last_error = Some(e.to_string()),
            }
            if st.phase == Phase::Held {
                self.schedule(&mut st, Instant::now());
            }
        } else {
            let mut st = self.lock();
            self.schedule(&mut st, now);
        }
    }

    /// Reports the loss once: is_acquired turns false, `lost()` resolves,
    /// the callback runs.
    pub(crate) fn mark_lost(&self, reason: LostReason) {
        let wakers = {
            let mut st = self.lock();
            if st.phase != Phase::Held {
                return;
            }
            st.phase = Phase::Lost(reason.clone());
            Self::cancel_timer(&mut st);
            std::mem::take(&mut st.lost_wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
        if let Some(callback) = &self.core.options.on_lock_lost {
            let err = self.lost_error(reason);
            // A panicking user callback must not take the driver thread down.
            let _ = catch_unwind(AssertUnwindSafe(|| callback(&err)));
        }
    }

    pub(crate) fn lost_error(&self, reason: LostReason) -> LockError {
        LockError::Lost {
            kind: self.core.protocol.kind(),
            key: self.core.protocol.key().to_owned(),
            reason,
        }
    }

    pub(crate) fn is_acquired(&self) -> bool {
        let st = self.lock();
        st.phase == Phase::Held && Instant::now() < st.valid_until
    }

    pub(crate) fn valid_until(&self) -> Instant {
        self.lock().valid_until
    }

    /// Stops refreshing; the hold then expires at `valid_until`.
    pub(crate) fn stop_refresh(self: &Arc<Self>) {
        let mut st = self.lock();
        if st.refreshing && st.phase == Phase::Held {
            st.refreshing = false;
            self.schedule(&mut st, Instant::now());
        }
    }

    /// The loss, once it happened; `None` while the hold is fine. Registers
    /// `waker` to be woken at the loss.
    pub(crate) fn poll_lost(&self, waker: &Waker) -> Option<LostReason> {
        let mut st = self.lock();
        if let Phase::Lost(reason) = &st.phase {
            return Some(reason.clone());
        }
        if !st.lost_wakers.iter().any(|w| w.will_wake(waker)) {
            st.lost_wakers.push(waker.clone());
        }
        None
    }

    /// Moves to `Releasing` and stops the timer; says what it was before.
    pub(crate) fn begin_release(&self) -> Prior {
        let mut st = self.lock();
        let prior = match &st.phase {
            Phase::Held | Phase::Releasing => Prior::Held,
            Phase::Lost(reason) => Prior::Lost(reason.clone()),
            Phase::Released => return Prior::Released,
        };
        if !matches!(st.phase, Phase::Lost(_)) {
            st.phase = Phase::Releasing;
        }
        Self::cancel_timer(&mut st);
        prior
    }

    /// Waits out any in-flight refresh, then runs the release script.
    pub(crate) async fn release_call(&self) -> Result<bool, LockError> {
        let _gate = self.gate.lock().await;
        self.release_unguarded().await
    }

    async fn release_unguarded(&self) -> Result<bool, LockError> {
        self.core
            .protocol
            .release(&self.id, self.core.options.command_timeout)
            .await
    }

    pub(crate) fn finish_release(&self) {
        self.lock().phase = Phase::Released;
        self.give_back_fixed_id();
    }

    /// Ends local ownership without releasing: no refresh, no expiry
    /// report, no release on drop.
    pub(crate) fn detach(&self) {
        let mut st = self.lock();
        Self::cancel_timer(&mut st);
        st.phase = Phase::Released;
        drop(st);
        self.give_back_fixed_id();
    }

    /// Releases in the background (a guard dropped without `release`).
    pub(crate) fn release_in_background(self: Arc<Self>) {
        if matches!(self.begin_release(), Prior::Released) {
            return;
        }
        let Ok(driver) = driver() else { return };
        driver.spawn(Box::pin(async move {
            let _ = self.release_call().await;
            self.finish_release();
        }));
    }

    fn give_back_fixed_id(&self) {
        if self.claims_fixed_id.swap(false, Ordering::AcqRel) {
            self.core.release_fixed_id();
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.give_back_fixed_id();
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
