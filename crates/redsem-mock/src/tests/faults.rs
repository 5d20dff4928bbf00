//! Fault injection: each fault, per node.

use std::thread;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use futures::future::{select, Either};
use futures::FutureExt;
use redsem_core::script::MUTEX_RELEASE;
use redsem_core::{Arg, BackendErrorKind, RedisBackend};

use crate::MockBackend;

fn set(redis: &MockBackend, key: &str) -> Result<bool, redsem_core::BackendError> {
    block_on(redis.set_nx_px(key, "v", 60_000))
}

#[test]
fn fail_next_fails_exactly_n_calls() {
    let redis = MockBackend::new();
    redis.fail_next(2);
    assert_eq!(redis.pending_failures(), 2);
    for _ in 0..2 {
        let err = set(&redis, "k").unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Connection);
        assert_eq!(err.message(), "mock: injected failure");
    }
    assert!(!redis.exists("k"), "failed calls run nothing");
    assert_eq!(redis.pending_failures(), 0);
    assert!(set(&redis, "k").unwrap());
    assert_eq!(redis.calls(), 3);
    assert_eq!(redis.script_calls("set_nx_px"), 1);

    redis.fail_next_with(1, BackendErrorKind::Timeout);
    let err = block_on(redis.run_script(&MUTEX_RELEASE, &["k"], &[Arg::Str("v")])).unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Timeout);
    assert!(redis.exists("k"));
    assert!(
        !redis.is_script_loaded(&MUTEX_RELEASE),
        "the EVALSHA failed, no EVAL followed"
    );
}

#[test]
fn latency_delays_each_call() {
    let redis = MockBackend::new();
    redis.set_latency(Duration::from_millis(30));
    assert_eq!(redis.latency(), Duration::from_millis(30));
    let started = Instant::now();
    assert!(set(&redis, "k").unwrap());
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(30), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    redis.set_latency(Duration::ZERO);
    let started = Instant::now();
    assert!(!set(&redis, "k").unwrap());
    assert!(started.elapsed() < Duration::from_millis(30));
}

#[test]
fn a_call_dropped_during_latency_never_runs() {
    let redis = MockBackend::new();
    redis.set_latency(Duration::from_millis(200));
    let call = redis.set_nx_px("k", "v", 60_000);
    let timer = async_io::Timer::after(Duration::from_millis(20));
    match block_on(select(call, timer)) {
        Either::Left(_) => panic!("the call beat its latency"),
        Either::Right((_, call)) => drop(call),
    }
    thread::sleep(Duration::from_millis(300));
    assert!(!redis.exists("k"));
    assert_eq!(redis.calls(), 1);
    assert_eq!(redis.script_calls("set_nx_px"), 0);
}

#[test]
fn hang_pends_until_unhang() {
    let redis = MockBackend::new();
    redis.hang();
    assert!(redis.is_hung());
    let mut call = redis.set_nx_px("k", "v", 60_000);
    assert!((&mut call).now_or_never().is_none());
    assert!(!redis.exists("k"));

    // Woken from another thread, not polled in a loop.
    let handle = redis.clone();
    let unhanger = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        handle.unhang();
    });
    let started = Instant::now();
    assert!(block_on(call).unwrap());
    assert!(started.elapsed() >= Duration::from_millis(40));
    unhanger.join().unwrap();
    assert!(!redis.is_hung());
    assert!(redis.exists("k"));
}

#[test]
fn dropping_a_hung_call_is_fine() {
    let redis = MockBackend::new();
    redis.hang();
    redis.hang(); // idempotent
    let mut call = redis.set_nx_px("k", "v", 60_000);
    assert!((&mut call).now_or_never().is_none());
    drop(call);
    redis.unhang();
    assert!(!redis.exists("k"));
    assert!(set(&redis, "k").unwrap());
}

#[test]
fn down_refuses_calls_and_keeps_data() {
    let redis = MockBackend::new();
    assert!(set(&redis, "k").unwrap());
    redis.set_latency(Duration::from_secs(60));
    redis.go_down();
    assert!(redis.is_down());
    let started = Instant::now();
    let err = set(&redis, "k2").unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "fails at once, no latency"
    );
    assert_eq!(err.kind(), BackendErrorKind::Connection);
    assert_eq!(err.message(), "connection refused");
    assert_eq!(redis.calls(), 2);
    redis.set_latency(Duration::ZERO);
    redis.come_up();
    assert!(!redis.is_down());
    assert_eq!(redis.get("k").as_deref(), Some("v"));
    assert!(set(&redis, "k2").unwrap());
}

#[test]
fn a_call_waiting_when_the_node_goes_down_fails_on_waking() {
    let redis = MockBackend::new();
    redis.hang();
    let mut call = redis.set_nx_px("k", "v", 60_000);
    assert!((&mut call).now_or_never().is_none());
    redis.go_down();
    redis.unhang();
    assert_eq!(
        block_on(call).unwrap_err().kind(),
        BackendErrorKind::Connection
    );
    assert!(!redis.exists("k"));
}

#[test]
fn restart_wipes_data_and_scripts() {
    let redis = MockBackend::new();
    assert!(set(&redis, "k").unwrap());
    block_on(redis.run_script(&MUTEX_RELEASE, &["x"], &[Arg::Str("v")])).unwrap();
    redis.go_down();
    redis.restart();
    assert!(!redis.is_down());
    assert!(redis.keys().is_empty());
    assert!(!redis.is_script_loaded(&MUTEX_RELEASE));
    assert!(set(&redis, "k").unwrap());
}

#[test]
fn faults_are_per_node() {
    let a = MockBackend::new();
    let b = MockBackend::new();
    a.fail_next(5);
    a.go_down();
    a.hang();
    a.set_latency(Duration::from_secs(60));
    assert!(set(&b, "k").unwrap());
    assert_eq!(b.calls(), 1);
    let a2 = a.clone();
    assert!(a2.is_down() && a2.is_hung() && a2.pending_failures() == 5);
}
