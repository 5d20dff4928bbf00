//! A node's clock in epoch milliseconds, read off a redsem [`Clock`]
//! (real time plus what the test advanced), so key expiry, `TIME` and
//! redsem's own timers agree.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redsem_core::Clock;

/// Epoch milliseconds = wall-clock time at creation + the time `time` has
/// moved since (real time and advances). It never goes backwards.
#[derive(Debug)]
pub(crate) struct EpochClock {
    epoch_ms_at_start: i64,
    started: Instant,
    time: Clock,
}

impl EpochClock {
    /// A clock starting at the current wall-clock time, following `time`.
    pub(crate) fn new(time: Clock) -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        EpochClock {
            epoch_ms_at_start: duration_ms(since_epoch),
            started: time.now(),
            time,
        }
    }

    /// The current time in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        let elapsed = self.time.now().saturating_duration_since(self.started);
        self.epoch_ms_at_start.saturating_add(duration_ms(elapsed))
    }
}

/// Whole milliseconds of `d`, saturating at `i64::MAX`.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds of `d` rounded up, so a non-zero duration never becomes 0 ms.
pub(crate) fn duration_ms_ceil(d: Duration) -> i64 {
    let ms = duration_ms(d);
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        ms.saturating_add(1)
    } else {
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_near_wall_clock_and_advances() {
        let time = Clock::manual();
        let clock = EpochClock::new(time.clone());
        let wall = duration_ms(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        );
        assert!((clock.now_ms() - wall).abs() < 1_000);

        let before = clock.now_ms();
        time.advance(Duration::from_secs(60));
        let after = clock.now_ms();
        assert!(after - before >= 60_000);
        assert!(after - before < 61_000);
    }

    #[test]
    fn huge_advances_do_not_overflow() {
        let time = Clock::manual();
        let clock = EpochClock::new(time.clone());
        time.advance(Duration::MAX);
        time.advance(Duration::MAX);
        assert!(clock.now_ms() > 0);
    }

    #[test]
    fn ceil_rounds_partial_milliseconds_up() {
        assert_eq!(duration_ms_ceil(Duration::from_micros(1)), 1);
        assert_eq!(duration_ms_ceil(Duration::from_millis(5)), 5);
        assert_eq!(duration_ms_ceil(Duration::from_micros(5_001)), 6);
        assert_eq!(duration_ms_ceil(Duration::ZERO), 0);
    }
}
