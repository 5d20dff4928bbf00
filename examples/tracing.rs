//! What redsem reports through `tracing` (feature `tracing` of
//! redsem-core): an acquire, a refresh that fails and recovers, and a loss,
//! on the in-memory backend with virtual time (no Redis, no waiting).
//!
//! ```sh
//! cargo run --example tracing
//! ```

use std::time::Duration;

use redsem_core::{LockError, LockOptions, Mutex};
use redsem_mock::MockBackend;

fn main() -> Result<(), LockError> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_target(true)
        .without_time()
        .with_ansi(false)
        .init();
    futures::executor::block_on(async {
        let redis = MockBackend::new();
        let options = LockOptions::builder()
            .lock_timeout(Duration::from_secs(3))
            .build()?;
        let mutex = Mutex::with_options(redis.clone(), "reports", options)?;
        let guard = mutex.acquire().await?;
        println!(
            "acquired after {} attempt(s), waited {:?}",
            guard.attempts(),
            guard.waited()
        );

        redis.fail_next(1); // the next refresh fails, its retry works
        redis.advance(Duration::from_secs(2));

        redis.del("mutex:reports"); // someone deletes the key
        redis.advance(Duration::from_secs(2)); // the next refresh finds it gone
        println!("{}", guard.lost().await);
        Ok(())
    })
}
