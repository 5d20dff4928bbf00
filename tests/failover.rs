//! Failover on real redis-servers, through both adapters (redis-rs
//! `ConnectionManager` and fred with a reconnect policy):
//!
//! - an acquire against a read-only replica keeps retrying (`READONLY` is
//!   transient) and succeeds once the replica is promoted;
//! - a real failover behind a `FaultProxy`: the primary crashes, the proxy
//!   moves clients to the replica, the replica is promoted, and an acquire
//!   that was waiting for another holder completes on the new primary.
//!
//! Every wait is bounded; progress is observed through the servers' own
//! counters (`INFO commandstats`, `INFO errorstats`), never by sleeping.

mod common;

use std::error::Error;
use std::time::Duration;

use common::clients::{runtime, Connect, FRED, REDIS_RS};
use common::server_checks::{get, wait_until};
use common::timing::ms;
use redsem_core::{LockError, LockGuard, LockOptions, Mutex};
use redsem_testing::{FaultProxy, RedisServer};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

type TestResult = Result<(), Box<dyn Error>>;

/// Bound for servers and clients to reach a state the test waits for.
const SETTLE: Duration = Duration::from_secs(10);
/// Bound for a waiting acquire to return once it can.
const FINISH: Duration = Duration::from_secs(15);

/// The value of `field` in an `INFO` section (`field:value` lines, or
/// `name:k=v,...` lines where `field` is `name:k`).
fn info_number(server: &RedisServer, section: &str, field: &str) -> Result<u64, Box<dyn Error>> {
    let reply = server.command(&["INFO", section])?;
    let text = reply.as_str().ok_or("INFO did not answer text")?;
    let (line_name, key) = field.split_once(':').unwrap_or((field, ""));
    for line in text.lines() {
        let Some(rest) = line
            .trim()
            .strip_prefix(line_name)
            .and_then(|r| r.strip_prefix(':'))
        else {
            continue;
        };
        if key.is_empty() {
            return Ok(rest.parse()?);
        }
        for pair in rest.split(',') {
            if let Some(value) = pair.strip_prefix(key).and_then(|v| v.strip_prefix('=')) {
                return Ok(value.parse()?);
            }
        }
    }
    Ok(0) // Redis omits counters that are still zero.
}

/// How many writes `server` refused with `READONLY`.
fn readonly_errors(server: &RedisServer) -> Result<u64, Box<dyn Error>> {
    info_number(server, "errorstats", "errorstat_READONLY:count")
}

/// How many `SET` commands `server` executed.
fn set_calls(server: &RedisServer) -> Result<u64, Box<dyn Error>> {
    info_number(server, "commandstats", "cmdstat_set:calls")
}

/// A primary that starts a replica's full sync at once (Redis otherwise
/// waits `repl-diskless-sync-delay`, 5 s, for more replicas to join).
fn start_primary() -> Result<RedisServer, Box<dyn Error>> {
    Ok(RedisServer::start_with(&[
        "--repl-diskless-sync-delay",
        "0",
    ])?)
}

/// A replica of `primary`, once its replication link is up.
fn start_replica(primary: &RedisServer) -> Result<RedisServer, Box<dyn Error>> {
    let port = primary.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port])?;
    wait_until("the replica to sync", SETTLE, || {
        let reply = replica.command(&["INFO", "replication"])?;
        Ok(reply
            .as_str()
            .is_some_and(|t| t.contains("master_link_status:up")))
    })?;
    Ok(replica)
}

fn promote(replica: &RedisServer) -> TestResult {
    let reply = replica.command(&["REPLICAOF", "NO", "ONE"])?;
    if !reply.is_ok() {
        return Err(format!("REPLICAOF NO ONE answered {reply}").into());
    }
    Ok(())
}

/// Fails with the acquire's result if it already ended: it must still be
/// retrying at this point.
fn still_waiting(
    rt: &Runtime,
    waiter: &mut JoinHandle<Result<LockGuard, LockError>>,
    during: &str,
) -> TestResult {
    if waiter.is_finished() {
        let result = rt.block_on(waiter)?;
        return Err(format!("the acquire ended {during} instead of retrying: {result:?}").into());
    }
    Ok(())
}

/// Waits (bounded) for the acquire's outcome.
fn outcome(
    rt: &Runtime,
    waiter: JoinHandle<Result<LockGuard, LockError>>,
) -> Result<LockGuard, Box<dyn Error>> {
    let result = rt.block_on(async { tokio::time::timeout(FINISH, waiter).await });
    Ok(result.map_err(|_| format!("the acquire did not return within {FINISH:?}"))???)
}

/// Scenario 1: acquiring through a replica meets `READONLY`, which must be
/// retried (not returned) until the replica is promoted.
fn acquire_through_a_replica_retries_until_it_is_promoted(connect: Connect) -> TestResult {
    let primary = start_primary()?;
    let replica = start_replica(&primary)?;
    let rt = runtime();
    let backend = rt.block_on(connect(replica.url()));
    let options = LockOptions::builder()
        .lock_timeout(ms(2_000))
        .acquire_timeout(Duration::from_secs(10))
        .retry_interval(ms(20))
        .command_timeout(ms(1_000))
        .build()?;
    let mutex = Mutex::with_options(backend, "failover-readonly", options)?;

    let before = readonly_errors(&replica)?;
    let mut waiter = rt.spawn(async move { mutex.acquire().await });
    // Several refused attempts prove the acquire retries READONLY.
    wait_until("three READONLY refusals", SETTLE, || {
        still_waiting(&rt, &mut waiter, "on READONLY")?;
        Ok(readonly_errors(&replica)? >= before + 3)
    })?;
    still_waiting(&rt, &mut waiter, "on READONLY")?;

    promote(&replica)?;
    let guard = outcome(&rt, waiter)?;
    assert_eq!(
        get(&replica, "mutex:failover-readonly")?.as_deref(),
        Some(guard.identifier()),
        "the promoted replica holds the new hold"
    );
    rt.block_on(guard.release())?;
    Ok(())
}

/// Scenario 2: a primary P with a replica R; the waiter reaches P through a
/// `FaultProxy` while another client holds the mutex on P. P crashes, the
/// proxy moves clients to R (still a replica: `READONLY`), R is promoted;
/// the holder's replicated key expires on R, and the waiting acquire
/// completes there.
fn waiting_acquire_completes_after_a_failover(connect: Connect) -> TestResult {
    let mut primary = start_primary()?;
    let replica = start_replica(&primary)?;
    let proxy = FaultProxy::start(primary.addr())?;
    let rt = runtime();
    let key = "mutex:failover";

    // The holder talks to P directly: its hold dies with P (refresh fails)
    // and its replicated key expires on R.
    let holder_backend = rt.block_on(connect(primary.url()));
    let holder_options = LockOptions::builder()
        .lock_timeout(ms(1_500))
        .refresh_interval(ms(300))
        .command_timeout(ms(300))
        .build()?;
    let holder = Mutex::with_options(holder_backend, "failover", holder_options)?;
    let held = rt.block_on(holder.acquire())?;
    wait_until("the hold to reach the replica", SETTLE, || {
        Ok(get(&replica, key)?.as_deref() == Some(held.identifier()))
    })?;

    let waiter_backend = rt.block_on(connect(proxy.url()));
    let waiter_options = LockOptions::builder()
        .lock_timeout(ms(2_000))
        .acquire_timeout(Duration::from_secs(10))
        .retry_interval(ms(50))
        .command_timeout(ms(500))
        .build()?;
    let waiter_mutex = Mutex::with_options(waiter_backend, "failover", waiter_options)?;
    let sets_before = set_calls(&primary)?;
    let mut waiter = rt.spawn(async move { waiter_mutex.acquire().await });
    wait_until("the waiter to contend on the primary", SETTLE, || {
        still_waiting(&rt, &mut waiter, "before the failover")?;
        Ok(set_calls(&primary)? >= sets_before + 2)
    })?;

    // The failover: P crashes, clients are moved to R, which still is a
    // replica for a moment, then R is promoted.
    let readonly_before = readonly_errors(&replica)?;
    primary.stop()?;
    proxy.fail_over_to(replica.addr());
    wait_until("the waiter to meet READONLY on the replica", SETTLE, || {
        still_waiting(&rt, &mut waiter, "on READONLY during the failover")?;
        Ok(readonly_errors(&replica)? > readonly_before)
    })?;
    promote(&replica)?;

    let guard = outcome(&rt, waiter)?;
    assert_ne!(guard.identifier(), held.identifier());
    assert_eq!(
        get(&replica, key)?.as_deref(),
        Some(guard.identifier()),
        "the new primary holds the waiter's hold"
    );
    assert!(proxy.stats().accepted >= 2, "the waiter reconnected");
    // The holder, whose refreshes went to the dead primary, learns that its
    // hold is lost.
    let lost = rt.block_on(async { tokio::time::timeout(FINISH, held.lost()).await })?;
    assert!(lost.is_lost(), "{lost}");
    rt.block_on(guard.release())?;
    Ok(())
}

#[test]
fn redis_rs_acquire_through_a_replica_retries_until_it_is_promoted() -> TestResult {
    acquire_through_a_replica_retries_until_it_is_promoted(REDIS_RS)
}

#[test]
fn fred_acquire_through_a_replica_retries_until_it_is_promoted() -> TestResult {
    acquire_through_a_replica_retries_until_it_is_promoted(FRED)
}

#[test]
fn redis_rs_waiting_acquire_completes_after_a_failover() -> TestResult {
    waiting_acquire_completes_after_a_failover(REDIS_RS)
}

#[test]
fn fred_waiting_acquire_completes_after_a_failover() -> TestResult {
    waiting_acquire_completes_after_a_failover(FRED)
}
