//! Issue 9: hostile and unusual input. No false quorum from a duplicated
//! Redlock node, no member collisions, no Redis stalls from huge permits,
//! errors that will repeat are not retried, no key left without expiry.

use std::time::{Duration, Instant};

use redsem_core::{
    BackendErrorKind, LockError, LockOptions, MultiSemaphore, RedlockMutex, RedlockSemaphore,
    Semaphore,
};
use redsem_mock::MockBackend;
use redsem_redis::RedisRsBackend;
use redsem_testing::{RedisServer, RespValue};

fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(fut)
}

fn invalid_option(err: LockError) -> (&'static str, String) {
    match err {
        LockError::InvalidOption { option, reason } => (option, reason),
        other => panic!("expected an invalid option, got {other:?}"),
    }
}

/// 9.1: [A, A, D] with D down: the two handles to A are one server, so no
/// quorum may come from them.
#[test]
fn a_duplicated_redlock_node_is_refused_on_the_mock() {
    block_on(async {
        let a = MockBackend::new();
        let d = MockBackend::new();
        d.go_down();
        let nodes = vec![a.clone(), a.clone(), d];
        let sem = RedlockSemaphore::new(nodes.clone(), "dup", 3).unwrap();
        let (option, reason) = invalid_option(sem.acquire().await.unwrap_err());
        assert_eq!(option, "nodes");
        assert!(
            reason.contains("node 1 and node 2 reach the same Redis server"),
            "{reason}"
        );
        assert!(redsem_core::flush(Duration::from_secs(5)).await);
        assert_eq!(
            a.zcard("semaphore:dup"),
            0,
            "what the attempt took is undone"
        );
        // distinct nodes are fine
        let ok = RedlockMutex::new(vec![a, MockBackend::new(), MockBackend::new()], "dup").unwrap();
        ok.acquire().await.unwrap().release().await.unwrap();
    });
}

/// 9.2: a fixed identifier (or suffix) of the form `<x>_<n>` could share a
/// member with MultiSemaphore holder `<x>`: refused for semaphore kinds.
#[test]
fn identifiers_that_look_like_members_are_refused() {
    let fixed = LockOptions::builder().identifier("abc_0").build().unwrap();
    let (option, reason) = invalid_option(
        Semaphore::with_options(MockBackend::new(), "s", 3, fixed.clone()).unwrap_err(),
    );
    assert_eq!(option, "identifier");
    assert!(
        reason.contains("`abc_0`") && reason.contains("holder `abc` with permit 0"),
        "{reason}"
    );
    assert!(MultiSemaphore::with_options(MockBackend::new(), "s", 3, 1, fixed.clone()).is_err());
    let suffix = LockOptions::builder()
        .identifier_suffix("svc_12")
        .build()
        .unwrap();
    let (option, _) =
        invalid_option(Semaphore::with_options(MockBackend::new(), "s", 3, suffix).unwrap_err());
    assert_eq!(option, "identifier_suffix");
    // a mutex has no members: any identifier is fine there
    assert!(redsem_core::Mutex::with_options(MockBackend::new(), "m", fixed).is_ok());
    let fine = LockOptions::builder().identifier("abc_x1").build().unwrap();
    assert!(Semaphore::with_options(MockBackend::new(), "s", 3, fine).is_ok());
}

/// 9.3: permits and limits are bounded so no script call can stall Redis.
#[test]
fn huge_permits_and_limits_are_refused() {
    let (option, reason) = invalid_option(
        MultiSemaphore::new(MockBackend::new(), "m", 1_000_000, 1_000_000).unwrap_err(),
    );
    assert_eq!(option, "permits");
    assert!(reason.contains("at most 1000"), "{reason}");
    let (option, _) =
        invalid_option(Semaphore::new(MockBackend::new(), "m", u32::MAX).unwrap_err());
    assert_eq!(option, "limit");
    assert!(MultiSemaphore::new(MockBackend::new(), "m", 5_000, 1_000).is_ok());
}

/// 9.4: on Redlock, errors that will repeat (here: a permission error) on
/// enough nodes to make a quorum impossible fail the acquire at once,
/// naming the nodes, instead of being retried for the acquire timeout.
#[test]
fn redlock_does_not_retry_errors_that_repeat() {
    block_on(async {
        let nodes: Vec<MockBackend> = (0..3).map(|_| MockBackend::new()).collect();
        for node in &nodes[..2] {
            node.fail_next_with(1_000, BackendErrorKind::Server);
        }
        let options = LockOptions::builder()
            .acquire_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let lock = RedlockMutex::with_options(nodes.clone(), "noperm", options).unwrap();
        let started = Instant::now();
        let err = lock.acquire().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let LockError::QuorumNotReached { failures, .. } = &err else {
            panic!("expected the quorum error itself, got {err:?}");
        };
        let fatal: Vec<usize> = failures
            .iter()
            .filter(|f| !f.retryable)
            .map(|f| f.node)
            .collect();
        assert_eq!(fatal, [1, 2], "{err}");
        assert!(
            nodes[0].pending_failures() > 990,
            "retried: {}",
            nodes[0].pending_failures()
        );
    });
}

fn pttl(server: &RedisServer, key: &str) -> i64 {
    match server.command(&["PTTL", key]).unwrap() {
        RespValue::Integer(n) => n,
        other => panic!("PTTL gave {other:?}"),
    }
}

/// 9.5 (real Redis): a lock timeout of 2^60 ms is accepted and the
/// semaphore key gets that expiry (before: the script wrote the member,
/// then PEXPIRE failed on "1.1529215046068e+18" and left the key forever).
#[tokio::test]
async fn a_huge_semaphore_lock_timeout_still_sets_an_expiry() {
    let server = RedisServer::start().unwrap();
    let backend = RedisRsBackend::connect(&server.url()).await.unwrap();
    let huge = Duration::from_millis(1 << 60);
    let options = LockOptions::builder().lock_timeout(huge).build().unwrap();
    let sem = Semaphore::with_options(backend, "forever", 2, options).unwrap();
    let guard = sem.acquire().await.unwrap();
    let ttl = pttl(&server, "semaphore:forever");
    assert!(ttl > 1 << 59, "PTTL {ttl}");
    guard.release().await.unwrap();
}

/// 9.1 (real Redis): two connections to one server are one vote.
#[tokio::test]
async fn two_connections_to_one_server_are_refused() {
    let one = RedisServer::start().unwrap();
    let other = RedisServer::start().unwrap();
    let nodes = vec![
        RedisRsBackend::connect(&one.url()).await.unwrap(),
        RedisRsBackend::connect(&other.url()).await.unwrap(),
        RedisRsBackend::connect(&one.url()).await.unwrap(),
    ];
    let lock = RedlockMutex::new(nodes, "dup").unwrap();
    let (option, reason) = invalid_option(lock.acquire().await.unwrap_err());
    assert_eq!(option, "nodes");
    assert!(reason.contains("node 1 and node 3"), "{reason}");
}

/// 9.4 (real Redis): WRONGTYPE (foreign data on the key) on two of three
/// nodes fails a Redlock semaphore at once.
#[tokio::test]
async fn redlock_wrongtype_fails_at_once() {
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start().unwrap()).collect();
    for server in &servers[..2] {
        server
            .command(&["HSET", "semaphore:foreign", "a", "b"])
            .unwrap();
    }
    let mut nodes = Vec::new();
    for server in &servers {
        nodes.push(RedisRsBackend::connect(&server.url()).await.unwrap());
    }
    let lock = RedlockSemaphore::new(nodes, "foreign", 3).unwrap();
    let started = Instant::now();
    let err = lock.acquire().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
}

/// 9.6 (real Redis): a mutex key holding another program's hash reads as
/// "busy"; the timeout says what is really there.
#[tokio::test]
async fn a_mutex_key_with_foreign_data_is_named_in_the_timeout() {
    let server = RedisServer::start().unwrap();
    server
        .command(&["HSET", "mutex:foreign", "a", "b"])
        .unwrap();
    let backend = RedisRsBackend::connect(&server.url()).await.unwrap();
    let options = LockOptions::builder()
        .acquire_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let mutex = redsem_core::Mutex::with_options(backend, "foreign", options).unwrap();
    let err = mutex.acquire().await.unwrap_err();
    assert!(err.is_timeout() && !err.is_unreachable(), "{err:?}");
    assert!(
        err.to_string()
            .ends_with("the key holds a hash, not a lock)"),
        "{err}"
    );
}
