//! The main job of redsem, end to end: workers on several "machines" share a
//! rate-limited resource (a `Semaphore`) and a critical section (a `Mutex`).
//!
//! ```text
//! cargo run --example quickstart                          # in-memory backend
//! cargo run --example quickstart -- redis://127.0.0.1:6379  # a real Redis
//! ```

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redsem_core::{LockOptions, Mutex, RedisBackend, Semaphore};
use redsem_mock::MockBackend;
use redsem_redis::RedisRsBackend;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let backend: Arc<dyn RedisBackend> = match std::env::args().nth(1) {
        Some(url) => {
            println!("using Redis at {url}");
            Arc::new(RedisRsBackend::connect(&url).await?)
        }
        None => {
            println!("using the in-memory backend (pass a redis:// URL to use Redis)");
            Arc::new(MockBackend::new())
        }
    };

    // At most 2 workers call the "API" at once; one at a time updates the
    // "ledger". Every worker builds its own handles, as separate processes
    // would.
    let options = LockOptions::builder()
        .acquire_timeout(Duration::from_secs(30))
        .build()?;
    let in_api = Arc::new(AtomicUsize::new(0));
    let ledger = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (backend, options) = (backend.clone(), options.clone());
        let (in_api, ledger) = (in_api.clone(), ledger.clone());
        workers.push(tokio::spawn(async move {
            let api =
                Semaphore::with_options(backend.clone(), "quickstart:api", 2, options.clone())?;
            let books = Mutex::with_options(backend, "quickstart:ledger", options)?;
            for job in 0..3 {
                let permit = api.acquire().await?;
                let now = in_api.fetch_add(1, Ordering::SeqCst) + 1;
                println!("worker {worker} job {job}: calling the API ({now} of 2 slots in use)");
                tokio::time::sleep(Duration::from_millis(20)).await;
                in_api.fetch_sub(1, Ordering::SeqCst);
                permit.release().await?;

                // A read-modify-write that is only correct under the mutex.
                books
                    .with_lock(|| async {
                        let seen = ledger.load(Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        ledger.store(seen + 1, Ordering::SeqCst);
                    })
                    .await?;
            }
            Ok::<(), redsem_core::LockError>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    println!(
        "ledger: {} entries (expected 12)",
        ledger.load(Ordering::SeqCst)
    );
    Ok(())
}
