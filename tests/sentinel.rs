//! Sentinel-managed Redis, through both adapters: a primary, a replica and
//! three Sentinels; a Mutex and a Semaphore are held, each with a waiter,
//! when `SENTINEL FAILOVER` moves the primary to the replica.
//!
//! The old primary keeps running: Sentinel demotes it (and closes its
//! clients' connections) about 10 s later, and only then do the clients
//! move to the new primary. What must hold afterwards, each step bounded:
//!
//! - every hold is either refreshed on the new primary (its key there
//!   expires later than anything replicated before the failover could) or
//!   reported lost (`lost()` resolved): never held in name only;
//! - every waiter gets its lock, on the new primary, once the hold is
//!   released or lost.
//!
//! The Mutex has a long lock timeout (its replicated key outlives the
//! demotion delay: it should be refreshed on the new primary), the
//! Semaphore a short one (its key expires there first: it should be lost);
//! either outcome is accepted for both.

mod common;

use std::error::Error;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::clients::runtime;
use common::timing::ms;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use redsem_core::{LockError, LockGuard, LockOptions, Mutex, RedisBackend, Semaphore};
use redsem_fred::FredBackend;
use redsem_redis::RedisRsBackend;
use redsem_testing::{RedisSentinel, RedisServer, RespValue};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

type TestResult = Result<(), Box<dyn Error>>;
type Backend = Arc<dyn RedisBackend>;
type Waiter = JoinHandle<Result<LockGuard, LockError>>;
/// Connects an adapter to the primary the deployment's Sentinels name.
type Connect = for<'a> fn(&'a RedisSentinel) -> LocalBoxFuture<'a, Result<Backend, Box<dyn Error>>>;

/// Bound of every step after the failover: the demotion delay (about
/// 10 s) plus reconnecting and a few retries.
const STEP: Duration = Duration::from_secs(30);
/// The Mutex's lock timeout: longer than the demotion delay.
const LONG: Duration = Duration::from_secs(20);
/// The Semaphore's lock timeout: shorter than the demotion delay.
const SHORT: Duration = Duration::from_secs(3);

/// redis-rs: a `SentinelConnection`, which follows the primary.
async fn redis_rs(deployment: &RedisSentinel) -> Result<Backend, Box<dyn Error>> {
    let urls = deployment.sentinel_urls();
    let backend = RedisRsBackend::sentinel(urls, deployment.service_name()).await?;
    Ok(Arc::new(backend))
}

/// fred: a `redis-sentinel://` URL naming the three Sentinels.
async fn fred(deployment: &RedisSentinel) -> Result<Backend, Box<dyn Error>> {
    let [first, others @ ..] = deployment.sentinels() else {
        return Err("no sentinels".into());
    };
    let mut url = format!(
        "redis-sentinel://127.0.0.1:{}?sentinelServiceName={}",
        first.port(),
        deployment.service_name()
    );
    for sentinel in others {
        url.push_str(&format!("&node=127.0.0.1:{}", sentinel.port()));
    }
    Ok(Arc::new(FredBackend::connect(&url).await?))
}

fn options(lock_timeout: Duration) -> Result<LockOptions, LockError> {
    LockOptions::builder()
        .lock_timeout(lock_timeout)
        .acquire_timeout(STEP * 2)
        .retry_interval(ms(100))
        .build()
}

/// One held lock and its waiter.
struct Case {
    guard: LockGuard,
    waiter: Waiter,
    lock_timeout: Duration,
}

/// True if `node` holds `id` under `key` (a mutex's value, a semaphore's
/// member).
fn holds(node: &RedisServer, key: &str, id: &str) -> Result<bool, Box<dyn Error>> {
    Ok(if key.starts_with("mutex:") {
        node.command(&["GET", key])?.as_str() == Some(id)
    } else {
        !node.command(&["ZSCORE", key, id])?.is_nil()
    })
}

/// True if `key` on `node` holds `id` and expires later than a write made
/// before `promoted` could: it was refreshed there after the failover.
fn refreshed_on(
    node: &RedisServer,
    case: &Case,
    promoted: Instant,
) -> Result<bool, Box<dyn Error>> {
    let (key, id) = (case.guard.key(), case.guard.identifier());
    let pttl = match node.command(&["PTTL", key])? {
        RespValue::Integer(ms) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
        _ => return Ok(false),
    };
    Ok(holds(node, key, id)? && Instant::now() + pttl > promoted + case.lock_timeout)
}

/// Waits until the hold is refreshed on `new` (true) or reported lost
/// (false).
fn settle(new: &RedisServer, case: &Case, promoted: Instant) -> Result<bool, Box<dyn Error>> {
    let deadline = Instant::now() + STEP;
    loop {
        if case.guard.lost().now_or_never().is_some() {
            return Ok(false);
        }
        if refreshed_on(new, case, promoted)? {
            // Refreshed, and not lost meanwhile.
            return Ok(case.guard.lost().now_or_never().is_none());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} was neither refreshed on the new primary nor reported lost within {STEP:?}",
                case.guard.key()
            )
            .into());
        }
        thread::sleep(ms(50));
    }
}

/// The waiter's guard, within `STEP`.
fn waited(rt: &Runtime, waiter: Waiter) -> Result<LockGuard, Box<dyn Error>> {
    let result = rt.block_on(async { tokio::time::timeout(STEP, waiter).await });
    Ok(result.map_err(|_| format!("the waiter did not get the lock within {STEP:?}"))???)
}

fn failover_while_locks_are_held_and_waited_for(connect: Connect) -> TestResult {
    let deployment = RedisSentinel::start()?;
    let rt = runtime();
    let backend = rt.block_on(connect(&deployment))?;

    let mut cases = Vec::new();
    for (kind, lock_timeout) in [("mutex", LONG), ("semaphore", SHORT)] {
        let options = options(lock_timeout)?;
        let (guard, waiter) = if kind == "mutex" {
            let holder = Mutex::with_options(backend.clone(), "sentinel", options.clone())?;
            let waiter = Mutex::with_options(backend.clone(), "sentinel", options)?;
            let guard = rt.block_on(holder.acquire())?;
            (guard, rt.spawn(async move { waiter.acquire().await }))
        } else {
            let holder = Semaphore::with_options(backend.clone(), "sentinel", 1, options.clone())?;
            let waiter = Semaphore::with_options(backend.clone(), "sentinel", 1, options)?;
            let guard = rt.block_on(holder.acquire())?;
            (guard, rt.spawn(async move { waiter.acquire().await }))
        };
        cases.push(Case {
            guard,
            waiter,
            lock_timeout,
        });
    }
    let old = deployment.primary()?.port();
    for case in &cases {
        assert!(
            !case.waiter.is_finished(),
            "{}: waiter done",
            case.guard.key()
        );
    }

    let new = deployment.failover()?;
    let promoted = Instant::now();
    assert_ne!(new.port(), old);

    for case in cases {
        let key = case.guard.key().to_owned();
        let refreshed = settle(new, &case, promoted)?;
        eprintln!(
            "{key}: {} after {:?}",
            if refreshed {
                "refreshed on the new primary"
            } else {
                "reported lost"
            },
            promoted.elapsed()
        );
        if refreshed {
            rt.block_on(case.guard.release())?;
        }
        let next = waited(&rt, case.waiter)?;
        assert!(
            holds(new, &key, next.identifier())?,
            "{key}: the waiter's hold is not on the new primary"
        );
        rt.block_on(next.release())?;
    }
    Ok(())
}

#[test]
fn redis_rs_follows_a_sentinel_failover() -> TestResult {
    failover_while_locks_are_held_and_waited_for(|d| redis_rs(d).boxed_local())
}

#[test]
fn fred_follows_a_sentinel_failover() -> TestResult {
    failover_while_locks_are_held_and_waited_for(|d| fred(d).boxed_local())
}
