//! Issue 7 on real redis-servers, through both adapters: network blips
//! (through a `FaultProxy`) and a paused server shorter than half the lock
//! timeout never cost a hold, and a release rides through a reset
//! connection.

mod common;

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::clients::{runtime, Connect, FRED, REDIS_RS};
use common::timing::ms;
use redsem_core::{LockOptions, Mutex};
use redsem_testing::{FaultProxy, RedisServer, RespValue};

type TestResult = Result<(), Box<dyn Error>>;

fn get(server: &RedisServer, key: &str) -> Result<Option<String>, Box<dyn Error>> {
    Ok(match server.command(&["GET", key])? {
        RespValue::Nil => None,
        reply => Some(reply.as_str().ok_or("GET answered no string")?.to_owned()),
    })
}

/// Default options but a 1 s lock timeout (refresh every 333 ms), counting
/// reported losses.
fn options(lost: &Arc<AtomicUsize>) -> Result<LockOptions, Box<dyn Error>> {
    let lost = lost.clone();
    Ok(LockOptions::builder()
        .lock_timeout(ms(1_000))
        .on_lock_lost(move |_| {
            lost.fetch_add(1, Ordering::SeqCst);
        })
        .build()?)
}

/// 7.1: every connection is reset and new ones are refused for 400 ms (less
/// than half the lock timeout), over the moment a refresh is due (with the
/// old 0.8 interval, its only refresh before expiry): the hold survives.
fn hold_survives_a_reset_and_a_short_outage(connect: Connect) -> TestResult {
    let server = RedisServer::start()?;
    let proxy = FaultProxy::start(server.addr())?;
    let rt = runtime();
    let backend = rt.block_on(connect(proxy.url()));
    let lost = Arc::new(AtomicUsize::new(0));
    let mutex = Mutex::with_options(backend, "blip", options(&lost)?)?;
    let guard = rt.block_on(mutex.acquire())?;
    let acquired = Instant::now();
    thread::sleep(ms(700).saturating_sub(acquired.elapsed()));
    proxy.refuse();
    proxy.reset_all();
    thread::sleep(ms(400));
    proxy.pass();
    thread::sleep(ms(1_300)); // past the lock timeout
    assert_eq!(
        lost.load(Ordering::SeqCst),
        0,
        "a short outage cost the hold"
    );
    assert!(guard.is_acquired());
    assert_eq!(
        get(&server, "mutex:blip")?.as_deref(),
        Some(guard.identifier())
    );
    rt.block_on(guard.release())?;
    assert_eq!(get(&server, "mutex:blip")?, None);
    Ok(())
}

/// 7.1: the server is paused (SIGSTOP) for 450 ms, less than half the lock
/// timeout: the hold survives.
fn hold_survives_a_paused_server(connect: Connect) -> TestResult {
    let mut server = RedisServer::start()?;
    let rt = runtime();
    let backend = rt.block_on(connect(server.url()));
    let lost = Arc::new(AtomicUsize::new(0));
    let mutex = Mutex::with_options(backend, "paused", options(&lost)?)?;
    let guard = rt.block_on(mutex.acquire())?;
    thread::sleep(ms(600));
    server.pause()?;
    thread::sleep(ms(450));
    server.resume()?;
    thread::sleep(ms(1_300));
    assert_eq!(
        lost.load(Ordering::SeqCst),
        0,
        "a short pause cost the hold"
    );
    assert!(guard.is_acquired());
    assert_eq!(
        get(&server, "mutex:paused")?.as_deref(),
        Some(guard.identifier())
    );
    rt.block_on(guard.release())?;
    Ok(())
}

/// 7.12: a release that meets a reset connection (new ones refused for
/// 150 ms) is retried; the key does not wait for its lock timeout.
fn release_rides_through_a_reset(connect: Connect) -> TestResult {
    let server = RedisServer::start()?;
    let proxy = FaultProxy::start(server.addr())?;
    let rt = runtime();
    let backend = rt.block_on(connect(proxy.url()));
    let options = LockOptions::builder()
        .lock_timeout(Duration::from_secs(30))
        .build()?;
    let mutex = Mutex::with_options(backend, "release", options)?;
    let guard = rt.block_on(mutex.acquire())?;
    proxy.refuse();
    proxy.reset_all();
    let released = thread::scope(|scope| {
        scope.spawn(|| {
            thread::sleep(ms(150));
            proxy.pass();
        });
        rt.block_on(guard.release())
    });
    released?;
    assert_eq!(get(&server, "mutex:release")?, None);
    Ok(())
}

#[test]
fn redis_rs_hold_survives_a_reset_and_a_short_outage() -> TestResult {
    hold_survives_a_reset_and_a_short_outage(REDIS_RS)
}

#[test]
fn fred_hold_survives_a_reset_and_a_short_outage() -> TestResult {
    hold_survives_a_reset_and_a_short_outage(FRED)
}

#[test]
fn redis_rs_hold_survives_a_paused_server() -> TestResult {
    hold_survives_a_paused_server(REDIS_RS)
}

#[test]
fn fred_hold_survives_a_paused_server() -> TestResult {
    hold_survives_a_paused_server(FRED)
}

#[test]
fn redis_rs_release_rides_through_a_reset() -> TestResult {
    release_rides_through_a_reset(REDIS_RS)
}

#[test]
fn fred_release_rides_through_a_reset() -> TestResult {
    release_rides_through_a_reset(FRED)
}
