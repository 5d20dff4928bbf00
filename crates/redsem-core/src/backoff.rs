//! How long to wait before the next try: jittered, and growing while calls
//! fail, so waiters neither hammer a sick server nor retry in lockstep.
//!
//! - After a *busy* answer: `retry_interval` × a random factor in
//!   [0.5, 1.5). Contenders spread out, the mean stays `retry_interval`.
//! - After the *k*-th failure in a row (no answer, server unavailable):
//!   `min(retry_interval × 2^(k-1), cap)` × a random factor in [0.5, 1.0],
//!   with `cap = max(retry_interval, 1 s)`. A waiter on an unreachable
//!   Redis makes about 6 attempts in its first second, then 1 to 2 a second.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The cap of the failure backoff, unless `retry_interval` is longer.
pub(crate) const FAILURE_CAP: Duration = Duration::from_secs(1);

/// Delay after a busy answer.
pub(crate) fn after_busy(base: Duration) -> Duration {
    scale(base, 0.5, 1.5)
}

/// Delay after the `failures`-th consecutive failed attempt (from 1).
pub(crate) fn after_failure(base: Duration, failures: u32, cap: Duration) -> Duration {
    let cap = cap.max(base);
    let growth = 1u32 << failures.saturating_sub(1).min(20);
    let delay = base.saturating_mul(growth).min(cap);
    scale(delay, 0.5, 1.0)
}

/// `d` × a uniformly random factor in [lo, hi).
fn scale(d: Duration, lo: f64, hi: f64) -> Duration {
    let unit = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
    d.mul_f64(lo + (hi - lo) * unit)
}

/// A random number from std's per-process random hash keys (no dependency;
/// jitter needs spread, not cryptographic quality).
fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn busy_delays_spread_around_the_interval() {
        let delays: Vec<Duration> = (0..200).map(|_| after_busy(10 * MS)).collect();
        assert!(delays.iter().all(|d| *d >= 5 * MS && *d < 15 * MS));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 100, "not jittered: {}", distinct.len());
    }

    #[test]
    fn failure_delays_double_up_to_the_cap() {
        for k in 1..=30 {
            let d = after_failure(10 * MS, k, FAILURE_CAP);
            let full = (10 * MS * (1 << (k - 1).min(20))).min(FAILURE_CAP);
            assert!(d >= full / 2 && d <= full, "k={k}: {d:?} vs {full:?}");
        }
        // a retry interval above the cap is kept
        assert!(after_failure(5_000 * MS, 3, FAILURE_CAP) >= 2_500 * MS);
    }

    #[test]
    fn an_unreachable_redis_gets_few_attempts_in_the_first_second() {
        // worst case: every delay at its lower bound
        let (mut t, mut attempts) = (Duration::ZERO, 1);
        while t < Duration::from_secs(1) {
            let full = (10 * MS * (1 << (attempts - 1))).min(FAILURE_CAP);
            t += full / 2;
            attempts += 1;
        }
        assert!(attempts <= 10, "{attempts}");
    }
}
