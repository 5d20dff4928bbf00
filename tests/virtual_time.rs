//! Issue 8: with the mock, redsem's own timers follow the mock's clock:
//! `advance(d)` fires refresh ticks, loss detection, acquire retries and
//! timeouts and call bounds that fall due, so these tests take virtual
//! seconds or hours and milliseconds of wall time, the same every run.

use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::future::{join, FutureExt};
use redsem_core::{Clock, LockError, LockGuard, LockOptions, LostReason, Mutex, RedlockMutex};
use redsem_mock::MockBackend;

fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(fut)
}

/// Runs `test` under `block_on` and checks it took less than `limit` of
/// wall time (the point of these tests: virtual seconds, real milliseconds).
fn within_wall_time(limit: Duration, test: impl std::future::Future<Output = ()>) {
    let wall = Instant::now();
    block_on(test);
    assert!(wall.elapsed() < limit, "{:?}", wall.elapsed());
}

/// A mutex on `key` with the default options, held.
async fn held(redis: &MockBackend, key: &str) -> LockGuard {
    Mutex::new(redis.clone(), key)
        .unwrap()
        .acquire()
        .await
        .unwrap()
}

const HOUR: Duration = Duration::from_secs(3600);

/// The loss, if `guard.lost()` has resolved.
fn lost_now(guard: &LockGuard) -> Option<LockError> {
    match pin!(guard.lost()).poll_unpin(&mut std::task::Context::from_waker(
        futures::task::noop_waker_ref(),
    )) {
        Poll::Ready(err) => Some(err),
        Poll::Pending => None,
    }
}

/// The acceptance test: default options, refresh stopped, 11
/// virtual seconds: the loss is reported, in well under a second.
#[test]
fn a_lock_without_refresh_is_lost_after_its_ttl() {
    within_wall_time(Duration::from_secs(1), async {
        let redis = MockBackend::new();
        let guard = held(&redis, "jobs").await;
        guard.stop_refresh();
        redis.advance(Duration::from_secs(11));
        assert!(!guard.is_acquired());
        let err = lost_now(&guard).expect("lost() has resolved");
        assert!(
            matches!(
                err,
                LockError::Lost {
                    reason: LostReason::Expired,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(redis.get("mutex:jobs"), None);
    });
}

/// ...and with refresh running, a virtual hour keeps the lock.
#[test]
fn refresh_keeps_a_lock_for_a_virtual_hour() {
    within_wall_time(Duration::from_secs(5), async {
        let redis = MockBackend::new();
        let guard = held(&redis, "jobs").await;
        redis.reset_stats();
        redis.advance(HOUR);
        assert!(guard.is_acquired());
        assert!(lost_now(&guard).is_none());
        assert_eq!(redis.get("mutex:jobs").as_deref(), Some(guard.identifier()));
        // a refresh every third of the 10 s lock timeout
        assert_eq!(redis.script_calls("mutex_refresh"), 1080);
        guard.release().await.unwrap();
    });
}

/// An acquire on a busy lock times out after its (virtual) acquire timeout.
#[test]
fn an_acquire_times_out_in_virtual_time() {
    within_wall_time(Duration::from_secs(2), async {
        let redis = MockBackend::new();
        let _holder = held(&redis, "busy").await;
        let options = LockOptions::builder()
            .acquire_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let waiter = Mutex::with_options(redis.clone(), "busy", options).unwrap();
        let (result, ()) = join(waiter.acquire(), async {
            redis.advance(Duration::from_secs(30));
        })
        .await;
        let err = result.unwrap_err();
        assert!(err.is_timeout() && !err.is_unreachable(), "{err:?}");
    });
}

/// A hung Redis: the refresh call is bounded by the command timeout on the
/// same clock, and the loss comes at the validity's end.
#[test]
fn a_hung_redis_loses_the_lock_in_virtual_time() {
    block_on(async {
        let redis = MockBackend::new();
        let guard = held(&redis, "hung").await;
        redis.hang();
        redis.advance(Duration::from_secs(9));
        assert!(guard.is_acquired(), "still valid at 9 s");
        redis.advance(Duration::from_secs(1));
        let err = lost_now(&guard).expect("lost at the validity's end");
        assert!(
            matches!(
                err,
                LockError::Lost {
                    reason: LostReason::Unconfirmed { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        redis.unhang();
    });
}

/// Redlock over nodes sharing one clock, one of them down: a virtual hour
/// on the quorum.
#[test]
fn redlock_with_a_node_down_for_a_virtual_hour() {
    block_on(async {
        let clock = Clock::manual();
        let nodes: Vec<MockBackend> = (0..3)
            .map(|_| MockBackend::with_clock(clock.clone()))
            .collect();
        nodes[2].go_down();
        let guard = RedlockMutex::new(nodes.clone(), "global")
            .unwrap()
            .acquire()
            .await
            .unwrap();
        clock.advance(HOUR);
        assert!(guard.is_acquired());
        assert!(lost_now(&guard).is_none());
        for node in &nodes[..2] {
            assert_eq!(
                node.get("mutex:global").as_deref(),
                Some(guard.identifier())
            );
        }
        guard.release().await.unwrap();
    });
}
