//! Refresh/release races and tick scheduling, on the mock (its latency
//! control makes the interleavings reproducible).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::timing::{counting, ms, sleep};
use redsem_core::script::MUTEX_REFRESH;
use redsem_core::{Arg, LockOptions, Mutex, RedisBackend, RedlockMutex};
use redsem_mock::MockBackend;

/// LOCK-T1: releasing while a slow refresh is in flight reports no loss.
#[test]
fn release_during_a_slow_refresh_reports_no_loss() {
    futures::executor::block_on(async {
        let mock = MockBackend::new();
        let lost = Arc::new(AtomicUsize::new(0));
        let options = counting(
            LockOptions::builder()
                .lock_timeout(Duration::from_secs(1))
                .refresh_interval(ms(50))
                .command_timeout(ms(500)),
            &lost,
        );
        let mutex = Mutex::with_options(mock.clone(), "k", options).unwrap();
        let guard = mutex.acquire().await.unwrap();
        mock.set_latency(ms(200));
        sleep(ms(100)).await; // the first refresh is in flight now
        assert_eq!(mock.script_calls("mutex_refresh"), 0);
        guard.release().await.unwrap();
        assert_eq!(mock.get("mutex:k"), None);
        sleep(ms(300)).await;
        assert_eq!(lost.load(Ordering::SeqCst), 0, "a release is not a loss");
    });
}

/// MUTEX-13: a refresh slower than the interval makes ticks skip, not queue.
#[test]
fn overlapping_refresh_ticks_are_skipped() {
    futures::executor::block_on(async {
        let mock = MockBackend::new();
        let options = LockOptions::builder()
            .lock_timeout(Duration::from_secs(2))
            .refresh_interval(ms(100))
            .command_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        // Load the refresh script, so no EVALSHA→EVAL fallback doubles a call.
        let load = [Arg::Str("nobody"), Arg::Int(1000)];
        mock.eval(&MUTEX_REFRESH, &["mutex:k"], &load)
            .await
            .unwrap();
        mock.reset_stats();
        let guard = Mutex::with_options(mock.clone(), "k", options)
            .unwrap()
            .acquire()
            .await
            .unwrap();
        let start = Instant::now();
        mock.set_latency(ms(200)); // each refresh runs 100 ms in, returns at 200 ms
                                   // Ticks at 100 (runs 200, done 300), 400 (runs 500, done 600),
                                   // 700 (runs 800): two runs by 650 ms. Queued ticks would make three.
        sleep(ms(650).saturating_sub(start.elapsed())).await;
        assert_eq!(mock.script_calls("mutex_refresh"), 2);
        mock.set_latency(Duration::ZERO);
        guard.release().await.unwrap();
    });
}

/// A stale refresh of an earlier hold never marks a newer hold as lost.
#[test]
fn a_stale_refresh_never_marks_a_newer_hold_lost() {
    futures::executor::block_on(async {
        let mock = MockBackend::new();
        let lost = Arc::new(AtomicUsize::new(0));
        let options = counting(
            LockOptions::builder()
                .identifier("same-id")
                .lock_timeout(Duration::from_secs(1))
                .refresh_interval(ms(50)),
            &lost,
        );
        let mutex = Mutex::with_options(mock.clone(), "k", options).unwrap();
        for _ in 0..5 {
            let old = mutex.acquire().await.unwrap();
            mock.set_latency(ms(80));
            sleep(ms(70)).await; // a refresh of `old` is in flight
            old.release().await.unwrap();
            mock.set_latency(Duration::ZERO);
            let new = mutex.acquire().await.unwrap();
            sleep(ms(200)).await;
            assert!(new.is_acquired());
            new.release().await.unwrap();
        }
        assert_eq!(lost.load(Ordering::SeqCst), 0);
    });
}

/// Redlock: a refresh re-creates the hold on a node that lost it; a release
/// racing that refresh must not leave a ghost behind on any node.
#[test]
fn redlock_release_never_races_a_refresh_into_a_ghost() {
    futures::executor::block_on(async {
        for _ in 0..5 {
            let nodes = [MockBackend::new(), MockBackend::new(), MockBackend::new()];
            let options = LockOptions::builder()
                .lock_timeout(Duration::from_secs(2))
                .refresh_interval(ms(50))
                .build()
                .unwrap();
            let mutex = RedlockMutex::with_options(nodes.to_vec(), "k", options).unwrap();
            let guard = mutex.acquire().await.unwrap();
            nodes[2].del("mutex:k"); // node 3 lost it: the next refresh restores it
            for n in &nodes {
                n.set_latency(ms(40));
            }
            sleep(ms(60)).await; // that refresh is in flight
            guard.release().await.unwrap();
            for n in &nodes {
                n.set_latency(Duration::ZERO);
            }
            sleep(ms(150)).await;
            for (i, n) in nodes.iter().enumerate() {
                assert_eq!(n.get("mutex:k"), None, "ghost hold on node {}", i + 1);
            }
        }
    });
}
