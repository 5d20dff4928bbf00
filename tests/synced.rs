//! Issue 12.5: synced grants on a real primary with a real replica, through
//! both adapters. The replica reaches its primary through a `FaultProxy`, so
//! the test controls the replication link: slow (latency), or cut
//! (blackhole).
//!
//! - A synced acquire returns only once the replica has the hold: the
//!   replica is read right after, over a link 40 ms slow each way (without
//!   `WAIT` the key would not be there yet).
//! - With the link cut, `ReplicaPolicy::Fail` refuses the acquire and
//!   releases what it took; `ReplicaPolicy::Report` grants it and says
//!   0 of 1 replicas confirmed.
//! - With the link cut after the acquire, unconfirmed refreshes count as
//!   failed: the hold is reported lost before it would expire.
//!
//! Every wait is bounded.

mod common;

use std::error::Error;
use std::time::Duration;

use common::clients::{runtime, Connect, FRED, REDIS_RS};
use common::server_checks::{get, wait_until};
use common::timing::ms;
use redsem_core::{LockError, LockOptions, Mutex, ReplicaAcks, ReplicaPolicy, ReplicaSync};
use redsem_testing::{FaultProxy, RedisServer, RespConnection};

type TestResult = Result<(), Box<dyn Error>>;

const SETTLE: Duration = Duration::from_secs(10);

/// A primary and a replica that replicates through a proxy the test
/// controls.
struct Replicated {
    primary: RedisServer,
    replica: RedisServer,
    link: FaultProxy,
}

impl Replicated {
    fn start() -> Result<Self, Box<dyn Error>> {
        // A full sync starts at once (not after `repl-diskless-sync-delay`).
        let primary = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"])?;
        let link = FaultProxy::start(primary.addr())?;
        let port = link.port().to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port])?;
        // After a diskless sync the primary streams commands to the replica
        // (and counts it for WAIT) only from the replica's first ACK, sent
        // within a second: wait until a write is acknowledged. WAIT covers
        // the writes of its own connection, so both go on one.
        let mut conn = RespConnection::connect(primary.addr(), SETTLE)?;
        wait_until("the replica to acknowledge writes", SETTLE, || {
            conn.command(&["SET", "ready", "1"])?;
            let acked = conn.command(&["WAIT", "1", "50"])?;
            Ok(acked.as_integer() == Some(1))
        })?;
        Ok(Replicated {
            primary,
            replica,
            link,
        })
    }
}

fn options(sync: ReplicaSync) -> Result<LockOptions, LockError> {
    LockOptions::builder()
        .lock_timeout(ms(3_000))
        .acquire_timeout(ms(2_000))
        .command_timeout(ms(1_000))
        .synced_replicas(sync)
        .build()
}

fn acquire_returns_once_the_replica_has_the_hold(connect: Connect) -> TestResult {
    let servers = Replicated::start()?;
    servers.link.latency(ms(40));
    let rt = runtime();
    let backend = rt.block_on(connect(servers.primary.url()));
    let sync = ReplicaSync::new(1).timeout(ms(400));
    let mutex = Mutex::with_options(backend, "synced", options(sync)?)?;

    let guard = rt.block_on(mutex.acquire())?;
    let on_replica = get(&servers.replica, "mutex:synced")?;
    assert_eq!(
        on_replica.as_deref(),
        Some(guard.identifier()),
        "the replica has the hold when acquire returns"
    );
    let acks = ReplicaAcks {
        confirmed: 1,
        wanted: 1,
    };
    assert_eq!(guard.replicas(), Some(acks));
    rt.block_on(guard.release())?;
    Ok(())
}

fn a_cut_link_fails_or_reports_the_acquire(connect: Connect) -> TestResult {
    let servers = Replicated::start()?;
    servers.link.blackhole();
    let rt = runtime();
    let backend = rt.block_on(connect(servers.primary.url()));
    let sync = ReplicaSync::new(1).timeout(ms(100));

    let strict = Mutex::with_options(backend.clone(), "cut", options(sync)?)?;
    match rt.block_on(strict.acquire()) {
        Err(LockError::ReplicasNotConfirmed { acks, .. }) => {
            assert_eq!((acks.confirmed, acks.wanted), (0, 1));
        }
        other => return Err(format!("expected ReplicasNotConfirmed, got {other:?}").into()),
    }
    wait_until("the refused hold to be released", SETTLE, || {
        Ok(get(&servers.primary, "mutex:cut")?.is_none())
    })?;

    let lenient = sync.on_missing(ReplicaPolicy::Report);
    let mutex = Mutex::with_options(backend, "cut", options(lenient)?)?;
    let guard = rt.block_on(mutex.acquire())?;
    let acks = ReplicaAcks {
        confirmed: 0,
        wanted: 1,
    };
    assert_eq!(guard.replicas(), Some(acks));
    assert_eq!(
        get(&servers.primary, "mutex:cut")?.as_deref(),
        Some(guard.identifier())
    );
    rt.block_on(guard.release())?;
    Ok(())
}

#[test]
fn redis_rs_acquire_returns_once_the_replica_has_the_hold() -> TestResult {
    acquire_returns_once_the_replica_has_the_hold(REDIS_RS)
}

#[test]
fn fred_acquire_returns_once_the_replica_has_the_hold() -> TestResult {
    acquire_returns_once_the_replica_has_the_hold(FRED)
}

#[test]
fn redis_rs_a_cut_link_fails_or_reports_the_acquire() -> TestResult {
    a_cut_link_fails_or_reports_the_acquire(REDIS_RS)
}

#[test]
fn fred_a_cut_link_fails_or_reports_the_acquire() -> TestResult {
    a_cut_link_fails_or_reports_the_acquire(FRED)
}

/// Refreshes that the replica cannot confirm count as failed (though each
/// extended the hold on the primary): the hold is reported lost.
#[test]
fn unconfirmed_refreshes_end_in_a_reported_loss() -> TestResult {
    let servers = Replicated::start()?;
    let rt = runtime();
    let backend = rt.block_on(REDIS_RS(servers.primary.url()));
    let options = LockOptions::builder()
        .lock_timeout(ms(900))
        .refresh_interval(ms(150))
        .command_timeout(ms(200))
        .synced_replicas(ReplicaSync::new(1).timeout(ms(50)))
        .build()?;
    let mutex = Mutex::with_options(backend, "refreshed", options)?;
    let guard = rt.block_on(mutex.acquire())?;
    assert!(guard.replicas().is_some_and(|acks| acks.is_confirmed()));

    servers.link.blackhole();
    let lost = rt.block_on(async { tokio::time::timeout(SETTLE, guard.lost()).await });
    let reason = lost.map_err(|_| "the hold was not reported lost")?;
    assert!(!guard.is_acquired(), "lost: {reason}");
    Ok(())
}

/// Bad settings are refused with the option's name; Redlock refuses the
/// option altogether; a backend without `WAIT` fails a strict acquire with
/// a message that says what to do.
#[test]
fn settings_are_checked_and_unsupported_backends_explained() -> TestResult {
    use redsem_core::{BackendErrorKind, RedlockMutex};
    use redsem_mock::MockBackend;

    let zero = LockOptions::builder()
        .synced_replicas(ReplicaSync::new(0))
        .build();
    assert!(zero.is_err_and(|e| e.to_string().contains("synced_replicas")));
    let forever = ReplicaSync::new(1).timeout(Duration::ZERO);
    let forever = LockOptions::builder().synced_replicas(forever).build();
    assert!(forever.is_err_and(|e| e.to_string().contains("WAIT 0")));

    let options = LockOptions::builder()
        .synced_replicas(ReplicaSync::new(1))
        .build()?;
    let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    let redlock = RedlockMutex::with_options(nodes, "k", options.clone());
    assert!(redlock.is_err_and(|e| e.to_string().contains("independent primaries")));

    /// A backend that keeps the provided `wait_for_replicas`.
    #[derive(Debug)]
    struct NoWait(MockBackend);
    #[async_trait::async_trait]
    impl redsem_core::RedisBackend for NoWait {
        async fn eval_sha(
            &self,
            script: &redsem_core::Script,
            keys: &[&str],
            args: &[redsem_core::Arg<'_>],
        ) -> Result<redsem_core::Reply, redsem_core::BackendError> {
            self.0.eval_sha(script, keys, args).await
        }
        async fn eval(
            &self,
            script: &redsem_core::Script,
            keys: &[&str],
            args: &[redsem_core::Arg<'_>],
        ) -> Result<redsem_core::Reply, redsem_core::BackendError> {
            self.0.eval(script, keys, args).await
        }
    }
    let redis = MockBackend::new();
    let mutex = Mutex::with_options(NoWait(redis.clone()), "k", options)?;
    match futures::executor::block_on(mutex.acquire()) {
        Err(LockError::Backend { source, .. }) => {
            assert_eq!(source.kind(), BackendErrorKind::Unsupported);
            assert!(source.to_string().contains("wait_for_replicas"), "{source}");
        }
        other => return Err(format!("expected an Unsupported error, got {other:?}").into()),
    }
    Ok(())
}
