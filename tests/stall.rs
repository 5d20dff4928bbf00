//! Issue 7.7: a backend call that blocks redsem's background thread is
//! detected and reported (its own test binary: it stalls the thread on
//! purpose).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redsem_core::{Arg, BackendError, LockOptions, Mutex, RedisBackend, Reply, Script};
use redsem_mock::MockBackend;

/// A backend that breaks the contract: while `block` is set its calls
/// block the polling thread.
#[derive(Debug, Clone)]
struct Blocking {
    inner: MockBackend,
    block: Arc<AtomicBool>,
}

impl Blocking {
    fn maybe_block(&self) {
        if self.block.swap(false, Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1600));
        }
    }
}

#[async_trait]
impl RedisBackend for Blocking {
    async fn eval_sha(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        self.maybe_block();
        self.inner.eval_sha(script, keys, args).await
    }

    async fn eval(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        self.maybe_block();
        self.inner.eval(script, keys, args).await
    }
}

#[test]
fn a_blocking_backend_call_is_reported_as_a_stall() {
    futures::executor::block_on(async {
        let backend = Blocking {
            inner: MockBackend::new(),
            block: Arc::new(AtomicBool::new(false)),
        };
        let options = LockOptions::builder()
            .lock_timeout(Duration::from_secs(5))
            .refresh_interval(Duration::from_millis(50))
            .build()
            .unwrap();
        let guard = Mutex::with_options(backend.clone(), "stall", options)
            .unwrap()
            .acquire()
            .await
            .unwrap();
        assert_eq!(redsem_core::background_stalls(), 0);
        backend.block.store(true, Ordering::SeqCst); // the next refresh blocks
        let deadline = Instant::now() + Duration::from_secs(10);
        while redsem_core::background_stalls() == 0 {
            assert!(Instant::now() < deadline, "the stall was not reported");
            std::thread::sleep(Duration::from_millis(50));
        }
        guard.release().await.unwrap();
    });
}
