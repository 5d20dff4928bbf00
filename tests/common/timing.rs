//! Timing presets, scaled so refresh has several chances per lock timeout
//! even on a loaded 2-core machine.

use std::time::Duration;

use redsem_core::{LockOptions, LockOptionsBuilder};

pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// redis-semaphore's test preset `T`, scaled: lock 500 ms, acquire 150 ms,
/// refresh 100 ms, retry 10 ms.
pub fn t_builder() -> LockOptionsBuilder {
    LockOptions::builder()
        .lock_timeout(ms(500))
        .acquire_timeout(ms(150))
        .refresh_interval(ms(100))
        .retry_interval(ms(10))
}

/// `builder` with an `on_lock_lost` callback that counts into `lost`.
pub fn counting(
    builder: LockOptionsBuilder,
    lost: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> LockOptions {
    let lost = lost.clone();
    builder
        .on_lock_lost(move |_| {
            lost.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
        .build()
        .expect("valid options")
}

pub fn t() -> LockOptions {
    t_builder().build().expect("valid preset")
}

/// Longer than the preset's lock timeout.
pub const OUTLIVE: Duration = ms(800);

/// Long enough for a couple of refresh ticks to notice something.
pub const NOTICE: Duration = ms(400);

/// Sleeps on any executor.
pub async fn sleep(d: Duration) {
    async_io::Timer::after(d).await;
}
