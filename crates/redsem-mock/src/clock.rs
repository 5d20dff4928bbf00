//! A node's clock: real time plus an offset the test can advance.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Epoch milliseconds = wall-clock time at creation + monotonic time elapsed
/// since + a manual offset. It never goes backwards.
#[derive(Debug)]
pub(crate) struct Clock {
    epoch_ms_at_start: i64,
    started: Instant,
    offset: Duration,
}

impl Clock {
    /// A clock starting at the current wall-clock time.
    pub(crate) fn new() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            epoch_ms_at_start: duration_ms(since_epoch),
            started: Instant::now(),
            offset: Duration::ZERO,
        }
    }

    /// The current time in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        let elapsed = self.started.elapsed().saturating_add(self.offset);
        self.epoch_ms_at_start.saturating_add(duration_ms(elapsed))
    }

    /// Moves the clock forward by `by`.
    pub(crate) fn advance(&mut self, by: Duration) {
        self.offset = self.offset.saturating_add(by);
    }
}

/// Whole milliseconds of `d`, saturating at `i64::MAX`.
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds of `d` rounded up, so a non-zero duration never becomes 0 ms.
pub(crate) fn duration_ms_ceil(d: Duration) -> i64 {
    let ms = duration_ms(d);
    if d.subsec_nanos() % 1_000_000 != 0 {
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
        let clock = Clock::new();
        let wall = duration_ms(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        );
        assert!((clock.now_ms() - wall).abs() < 1_000);

        let mut clock = clock;
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(60));
        let after = clock.now_ms();
        assert!(after - before >= 60_000);
        assert!(after - before < 61_000);
    }

    #[test]
    fn advance_saturates() {
        let mut clock = Clock::new();
        clock.advance(Duration::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now_ms(), i64::MAX);
    }

    #[test]
    fn ceil_rounds_partial_milliseconds_up() {
        assert_eq!(duration_ms_ceil(Duration::from_micros(1)), 1);
        assert_eq!(duration_ms_ceil(Duration::from_millis(5)), 5);
        assert_eq!(duration_ms_ceil(Duration::from_micros(5_001)), 6);
        assert_eq!(duration_ms_ceil(Duration::ZERO), 0);
    }
}
