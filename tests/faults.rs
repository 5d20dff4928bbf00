//! Issue 7 regressions on the mock: faults that production brings never
//! cost a healthy lock, never stall the others, and are reported once.
//! (Network faults on real Redis are in `failover.rs`.)

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::timing::{counting, ms, sleep};
use redsem_core::{BackendErrorKind, LockError, LockOptions, LostReason, Mutex, RedlockMutex};
use redsem_mock::MockBackend;

fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(fut)
}

/// Waits (bounded) until `cond` holds.
async fn eventually(what: &str, within: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        sleep(ms(5)).await;
    }
}

/// 7.1: with default refresh settings, one failed refresh is retried before
/// the hold expires, and an outage shorter than half the lock timeout
/// costs nothing. (Before: refresh at 0.8 × TTL, no retry: lost.)
#[test]
fn a_failed_refresh_is_retried_and_a_short_outage_costs_nothing() {
    block_on(async {
        let redis = MockBackend::new();
        let lost = Arc::new(AtomicUsize::new(0));
        let options = counting(LockOptions::builder().lock_timeout(ms(600)), &lost);
        let mutex = Mutex::with_options(redis.clone(), "blip", options).unwrap();
        let guard = mutex.acquire().await.unwrap();
        redis.fail_next(1);
        sleep(ms(300)).await; // the first refresh failed, its retry worked
        assert_eq!(redis.pending_failures(), 0);
        redis.go_down();
        sleep(ms(250)).await; // an outage of < half the lock timeout
        redis.come_up();
        sleep(ms(700)).await; // past the lock timeout
        assert!(guard.is_acquired());
        assert_eq!(lost.load(Ordering::SeqCst), 0);
        assert_eq!(redis.get("mutex:blip").as_deref(), Some(guard.identifier()));
        guard.release().await.unwrap();
    });
}

/// 7.2: errors on 2 of 3 nodes during a refresh are "unknown", not "no":
/// the lock is kept, nothing is released on the healthy node.
#[test]
fn redlock_refresh_errors_are_not_a_loss() {
    block_on(async {
        let nodes: Vec<MockBackend> = (0..3).map(|_| MockBackend::new()).collect();
        let lost = Arc::new(AtomicUsize::new(0));
        let options = counting(
            LockOptions::builder()
                .lock_timeout(ms(600))
                .refresh_interval(ms(100)),
            &lost,
        );
        let lock = RedlockMutex::with_options(nodes.clone(), "r", options).unwrap();
        let guard = lock.acquire().await.unwrap();
        nodes[0].fail_next(1);
        nodes[1].fail_next(1);
        sleep(ms(400)).await;
        assert_eq!(lost.load(Ordering::SeqCst), 0);
        assert!(guard.is_acquired());
        for node in &nodes {
            assert_eq!(node.get("mutex:r").as_deref(), Some(guard.identifier()));
        }
        guard.release().await.unwrap();
    });
}

/// 7.4: a server answering as during a failover (LOADING, READONLY, ...)
/// is waited out, not an error.
#[test]
fn failover_replies_are_ridden_through() {
    block_on(async {
        let redis = MockBackend::new();
        redis.fail_next_with(3, BackendErrorKind::Unavailable);
        let mutex = Mutex::new(redis.clone(), "failover").unwrap();
        let guard = mutex.acquire().await.unwrap();
        assert_eq!(redis.pending_failures(), 0);
        guard.release().await.unwrap();
    });
}

/// 7.5 and 7.6: an unreachable Redis is reported as such (not as "busy"),
/// with the connection error in the message, and the waiter backs off:
/// fewer than 40 calls in its first second, clean-ups included.
#[test]
fn an_outage_is_not_busy_and_is_not_hammered() {
    block_on(async {
        let redis = MockBackend::new();
        redis.go_down();
        let options = LockOptions::builder()
            .acquire_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let mutex = Mutex::with_options(redis.clone(), "down", options).unwrap();
        let err = mutex.acquire().await.unwrap_err();
        assert!(redsem_core::flush(Duration::from_secs(15)).await);
        let calls = redis.calls();
        assert!(calls < 40, "{calls} calls in the first second");
        assert!(err.is_timeout() && err.is_unreachable(), "{err:?}");
        assert!(err.to_string().contains("connection refused"), "{err}");

        // busy is not unreachable
        redis.come_up();
        let _holder = Mutex::new(redis.clone(), "busy")
            .unwrap()
            .acquire()
            .await
            .unwrap();
        let options = LockOptions::builder()
            .acquire_timeout(ms(50))
            .build()
            .unwrap();
        let err = Mutex::with_options(redis.clone(), "busy", options)
            .unwrap()
            .acquire()
            .await
            .unwrap_err();
        assert!(err.is_timeout() && !err.is_unreachable(), "{err:?}");
    });
}

/// 7.7: a callback that blocks never stops other locks' refreshes (it runs
/// on its own thread, not on the one that refreshes).
#[test]
fn a_blocking_callback_does_not_stall_other_locks() {
    block_on(async {
        let redis = MockBackend::new();
        let (unblock, blocked) = mpsc::channel::<()>();
        let blocked = std::sync::Mutex::new(blocked);
        let options = LockOptions::builder()
            .lock_timeout(ms(300))
            .refresh_interval(ms(50))
            .on_lock_lost(move |_| {
                let _ = blocked
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(10));
            })
            .build()
            .unwrap();
        let doomed = Mutex::with_options(redis.clone(), "doomed", options)
            .unwrap()
            .acquire()
            .await
            .unwrap();
        let healthy_options = LockOptions::builder()
            .lock_timeout(ms(300))
            .refresh_interval(ms(50))
            .build()
            .unwrap();
        let healthy = Mutex::with_options(redis.clone(), "healthy", healthy_options)
            .unwrap()
            .acquire()
            .await
            .unwrap();
        redis.del("mutex:doomed");
        let _ = doomed.lost().await; // the blocking callback runs now
        sleep(ms(900)).await; // three lock timeouts
        assert!(healthy.is_acquired(), "refresh stalled behind a callback");
        assert!(redis.get("mutex:healthy").is_some());
        unblock.send(()).unwrap();
        healthy.release().await.unwrap();
    });
}

/// 7.9: dropping a guard and acquiring again with the same fixed identifier
/// waits for the background release instead of failing with AlreadyHeld.
#[test]
fn a_fixed_identifier_waits_for_the_background_release() {
    block_on(async {
        let redis = MockBackend::new();
        let options = LockOptions::builder().identifier("me").build().unwrap();
        let mutex = Mutex::with_options(redis.clone(), "fixed", options).unwrap();
        let guard = mutex.acquire().await.unwrap();
        // a live guard still excludes a second acquire at once
        assert!(matches!(
            mutex.try_acquire().await,
            Err(LockError::AlreadyHeld { .. })
        ));
        redis.set_latency(ms(100));
        drop(guard); // its release takes 100 ms
        let again = mutex.acquire().await.unwrap();
        assert_eq!(again.identifier(), "me");
        assert!(redis.script_calls("mutex_release") >= 1);
        redis.set_latency(Duration::ZERO);
        again.release().await.unwrap();
    });
}

/// 7.10: a loss found by `release()` is reported to `on_lock_lost` and
/// `lost()`, exactly once.
#[test]
fn a_loss_found_by_release_is_reported_once() {
    block_on(async {
        let redis = MockBackend::new();
        let lost = Arc::new(AtomicUsize::new(0));
        let options = counting(LockOptions::builder(), &lost);
        let mutex = Mutex::with_options(redis.clone(), "gone", options).unwrap();
        let guard = mutex.acquire().await.unwrap();
        redis.del("mutex:gone");
        let err = guard.release().await.unwrap_err();
        assert!(err.is_lost(), "{err:?}");
        eventually("the callback ran", Duration::from_secs(2), || {
            lost.load(Ordering::SeqCst) == 1
        })
        .await;
        sleep(ms(50)).await;
        assert_eq!(lost.load(Ordering::SeqCst), 1);
    });
}

/// 7.11: `with_lock` keeps the work's result when the release finds the
/// hold gone (the loss is reported to the callback instead).
#[test]
fn with_lock_keeps_the_result_when_release_fails() {
    block_on(async {
        let redis = MockBackend::new();
        let lost = Arc::new(AtomicUsize::new(0));
        let options = counting(LockOptions::builder(), &lost);
        let mutex = Mutex::with_options(redis.clone(), "work", options).unwrap();
        let value = mutex
            .with_lock(|| async {
                redis.del("mutex:work"); // someone deletes the key
                42
            })
            .await
            .unwrap();
        assert_eq!(value, 42);
        eventually("the loss was reported", Duration::from_secs(2), || {
            lost.load(Ordering::SeqCst) == 1
        })
        .await;
    });
}

/// 7.11: a single-node guard's validity allows for clock drift, as
/// Redlock's does (lock timeout − 1 % − 2 ms).
#[test]
fn single_node_validity_allows_for_drift() {
    block_on(async {
        let mutex = Mutex::new(MockBackend::new(), "drift").unwrap();
        let guard = mutex.acquire().await.unwrap();
        let after = Instant::now();
        assert!(guard.valid_until() <= after + ms(10_000 - 102));
        guard.release().await.unwrap();
    });
}

/// 7.12: a release that meets a transient error is retried.
#[test]
fn a_release_retries_a_transient_error() {
    block_on(async {
        let redis = MockBackend::new();
        let guard = Mutex::new(redis.clone(), "rel")
            .unwrap()
            .acquire()
            .await
            .unwrap();
        redis.fail_next(2);
        guard.release().await.unwrap();
        assert_eq!(redis.get("mutex:rel"), None);
    });
}

/// 7.12: the same on Redlock: a node whose release failed is retried in
/// the background, so no stale key waits there for the lock timeout.
#[test]
fn a_redlock_release_retries_failed_nodes() {
    block_on(async {
        let nodes: Vec<MockBackend> = (0..3).map(|_| MockBackend::new()).collect();
        let guard = RedlockMutex::new(nodes.clone(), "rel")
            .unwrap()
            .acquire()
            .await
            .unwrap();
        nodes[2].fail_next(1);
        guard.release().await.unwrap();
        assert!(redsem_core::flush(Duration::from_secs(5)).await);
        for node in &nodes {
            assert_eq!(node.get("mutex:rel"), None);
        }
    });
}

/// 7.11: many `lost()` futures polled and dropped (each unregisters its
/// waker) do not disturb the one that waits for the loss.
#[test]
fn lost_resolves_after_many_abandoned_waits() {
    block_on(async {
        let redis = MockBackend::new();
        let options = LockOptions::builder()
            .lock_timeout(ms(100))
            .refresh_interval(Duration::ZERO)
            .build()
            .unwrap();
        let guard = Mutex::with_options(redis, "exp", options)
            .unwrap()
            .acquire()
            .await
            .unwrap();
        for _ in 0..1000 {
            let fut = std::pin::pin!(guard.lost());
            assert!(futures::poll!(fut).is_pending());
        }
        let err = guard.lost().await;
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
    });
}

/// 7.11: a `lost()` future that is polled and dropped leaves no waker
/// behind (before: every distinct waker ever polled was kept until the
/// guard died, a leak for a long-lived guard polled from many tasks).
#[test]
fn lost_keeps_no_waker_of_a_dropped_wait() {
    use std::task::{Context, Wake, Waker};

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    block_on(async {
        let guard = Mutex::new(MockBackend::new(), "wakers")
            .unwrap()
            .acquire()
            .await
            .unwrap();
        let wakers: Vec<Arc<Noop>> = (0..100).map(|_| Arc::new(Noop)).collect();
        for w in &wakers {
            let waker = Waker::from(w.clone());
            let mut cx = Context::from_waker(&waker);
            let fut = std::pin::pin!(guard.lost());
            assert!(futures::FutureExt::poll_unpin(&mut Box::pin(fut), &mut cx).is_pending());
        }
        let kept = wakers.iter().filter(|w| Arc::strong_count(w) > 1).count();
        assert_eq!(kept, 0, "{kept} wakers kept by dropped lost() futures");
        guard.release().await.unwrap();
    });
}
