//! Cancel safety: futures dropped at pseudo-random points (acquires in
//! flight, releases in flight, guards) never let more holders in than the
//! limit, and leave nothing held: abandoned holds are released in the
//! background long before their lock timeout.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::real_node::start_server;
use common::timing::{ms, sleep};
use futures::future::{select, Either};
use redsem_core::{LockOptions, RedisBackend, Semaphore};
use redsem_mock::MockBackend;
use redsem_redis::RedisRsBackend;

const LIMIT: usize = 3;
const TASKS: u64 = 12;
const ROUNDS: u64 = 12;

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Races `fut` against a pseudo-random deadline: `None` if it was dropped.
async fn maybe_cancel<F: std::future::Future>(
    rng: &mut Rng,
    max_ms: u64,
    fut: F,
) -> Option<F::Output> {
    let cancel_after = ms(rng.below(max_ms));
    match select(std::pin::pin!(fut), std::pin::pin!(sleep(cancel_after))).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}

async fn churn(
    backend: Arc<dyn RedisBackend>,
    zcard: impl Fn() -> usize + Send + Sync + 'static,
    seed: u64,
) {
    let options = LockOptions::builder()
        .lock_timeout(Duration::from_secs(20))
        .acquire_timeout(Duration::from_secs(20))
        .retry_interval(ms(2))
        .build()
        .unwrap();
    let sem = Semaphore::with_options(backend, "cancel", LIMIT as u32, options).unwrap();
    let holders = Arc::new(AtomicUsize::new(0));
    let zcard = Arc::new(zcard);
    let tasks = (0..TASKS).map(|task| {
        let (sem, holders, zcard) = (sem.clone(), holders.clone(), zcard.clone());
        async move {
            let mut rng = Rng(seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(task)
                | 1);
            for _ in 0..ROUNDS {
                let Some(acquired) = maybe_cancel(&mut rng, 8, sem.acquire()).await else {
                    continue;
                };
                let guard = acquired.expect("acquire");
                let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                assert!(now <= LIMIT, "{now} holders, limit {LIMIT}");
                let in_redis = zcard();
                assert!(
                    in_redis <= LIMIT,
                    "{in_redis} members in Redis, limit {LIMIT}"
                );
                sleep(ms(rng.below(3))).await;
                holders.fetch_sub(1, Ordering::SeqCst);
                match rng.below(3) {
                    0 => drop(guard),
                    1 => {
                        let _ = maybe_cancel(&mut rng, 3, guard.release()).await;
                    }
                    _ => {
                        // a release may fail only by reporting a loss, never here
                        guard.release().await.expect("release");
                    }
                }
            }
        }
    });
    futures::future::join_all(tasks).await;
    // Abandoned holds go away in the background, far sooner than the 20 s
    // lock timeout.
    let deadline = Instant::now() + Duration::from_secs(3);
    while zcard() != 0 {
        assert!(Instant::now() < deadline, "{} members left behind", zcard());
        sleep(ms(10)).await;
    }
}

#[test]
fn mock_with_latency() {
    for seed in 1..=8u64 {
        let mock = MockBackend::new();
        mock.set_latency(ms(1 + seed % 3));
        let inspect = mock.clone();
        futures::executor::block_on(churn(
            Arc::new(mock),
            move || inspect.zcard("semaphore:cancel"),
            seed,
        ));
    }
}

#[test]
fn real_redis() {
    let server = start_server();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backend: Arc<dyn RedisBackend> = Arc::new(
        rt.block_on(RedisRsBackend::connect(&server.url()))
            .expect("connect"),
    );
    let server = Arc::new(server);
    for seed in 1..=4u64 {
        let server = server.clone();
        let zcard = move || {
            let reply = server
                .command(&["ZCARD", "semaphore:cancel"])
                .expect("ZCARD");
            usize::try_from(reply.as_integer().expect("integer")).expect("count")
        };
        rt.block_on(churn(backend.clone(), zcard, seed));
    }
}
