//! Chaos soak (issue 7): several OS processes contend on a `Mutex`, a
//! `Semaphore` (limit 3) and a `RedlockMutex` (3 nodes), all through fault
//! proxies, while a fault schedule runs: connection resets, 600 ms network
//! stalls, a server paused for 1 s (a third of the lock timeout) and a
//! Redlock node restarted without its data (after a lock timeout down, as
//! Redlock requires). Every fault is shorter than the documented tolerance
//! (half the lock timeout), so:
//!
//! - never more holders than the limit, no lost update (non-atomic
//!   counters on a separate server, untouched by the faults);
//! - no loss is reported;
//! - every acquire either succeeds or times out (busy or unreachable).
//!
//! It prints the figures: faults injected, acquisitions, losses, max holders.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::clients::connection_manager;
use common::real_node::start_server;
use common::timing::ms;
use redsem_core::{LockError, LockOptions, Mutex, RedisBackend, RedlockMutex, Semaphore};
use redsem_redis::redis::aio::ConnectionManager;
use redsem_redis::redis::AsyncCommands;
use redsem_redis::RedisRsBackend;
use redsem_testing::{FaultProxy, RedisServer};

const PROCESSES: usize = 3;
const LIMIT: i64 = 3;
const WORKER_ENV: &str = "REDSEM_CHAOS_WORKER";
/// How long the fault schedule runs.
const SOAK: Duration = Duration::from_secs(45);

/// The losses a worker saw, with their messages.
type Losses = Arc<std::sync::Mutex<Vec<String>>>;

fn options(lost: &Losses) -> LockOptions {
    let lost = lost.clone();
    LockOptions::builder()
        .lock_timeout(Duration::from_secs(3))
        .acquire_timeout(Duration::from_secs(5))
        .on_lock_lost(move |err| {
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            lost.lock().unwrap().push(format!("{at}: {err}"));
        })
        .build()
        .expect("valid options")
}

async fn manager(port: &str) -> ConnectionManager {
    connection_manager(format!("redis://127.0.0.1:{port}/")).await
}

async fn backend(port: &str) -> Arc<dyn RedisBackend> {
    Arc::new(RedisRsBackend::new(manager(port).await))
}

/// GET, pause, SET: correct only under mutual exclusion.
async fn unsafe_increment(data: &mut ConnectionManager, key: &str) {
    let seen: Option<i64> = data.get(key).await.expect("GET");
    tokio::time::sleep(Duration::from_micros(300)).await;
    let _: () = data.set(key, seen.unwrap_or(0) + 1).await.expect("SET");
}

/// Counts an acquire error by kind; anything but a timeout fails the run.
async fn count_error(data: &mut ConnectionManager, err: &LockError) {
    let kind = match err {
        e if e.is_timeout() && e.is_unreachable() => "unreachable",
        e if e.is_timeout() => "busy",
        other => panic!("acquire failed with an unexpected error: {other}"),
    };
    let _: i64 = data.incr(format!("errors:{kind}"), 1).await.expect("INCR");
}

/// One contending task of `kind` until the parent sets `stop`.
async fn contend(kind: &str, ports: Vec<String>, mut data: ConnectionManager, lost: Losses) {
    let single = backend(&ports[0]).await;
    let mut nodes = Vec::new();
    for port in &ports[1..] {
        nodes.push(backend(port).await);
    }
    let mutex = Mutex::with_options(single.clone(), "chaos", options(&lost)).unwrap();
    let sem = Semaphore::with_options(single, "chaos", LIMIT as u32, options(&lost)).unwrap();
    let redlock = RedlockMutex::with_options(nodes, "chaos", options(&lost)).unwrap();
    let mut max_holders = 0;
    loop {
        let stop: Option<i64> = data.get("stop").await.expect("GET");
        if stop.is_some() {
            break;
        }
        let acquired = match kind {
            "mutex" => mutex.acquire().await,
            "semaphore" => sem.acquire().await,
            _ => redlock.acquire().await,
        };
        let guard = match acquired {
            Ok(guard) => guard,
            Err(err) => {
                count_error(&mut data, &err).await;
                continue;
            }
        };
        if kind == "semaphore" {
            let holders: i64 = data.incr("holders", 1).await.expect("INCR");
            max_holders = max_holders.max(holders);
            if holders > LIMIT {
                let _: i64 = data.incr("violations", 1).await.expect("INCR");
            }
            tokio::time::sleep(ms(2)).await;
            let _: i64 = data.decr("holders", 1).await.expect("DECR");
        } else {
            unsafe_increment(&mut data, &format!("{kind}:counter")).await;
        }
        let _: i64 = data.incr(format!("{kind}:ok"), 1).await.expect("INCR");
        // A release that fails only lets the hold expire.
        let _ = guard.release().await;
    }
    let _: i64 = data.rpush("maxima", max_holders).await.expect("RPUSH");
}

async fn worker(data_port: String, ports: Vec<String>) {
    let mut data = manager(&data_port).await;
    let lost = Losses::default();
    let mut tasks = Vec::new();
    for kind in [
        "mutex",
        "mutex",
        "semaphore",
        "semaphore",
        "semaphore",
        "redlock",
        "redlock",
    ] {
        let (ports, conn, lost) = (ports.clone(), data.clone(), lost.clone());
        tasks.push(tokio::spawn(contend(kind, ports, conn, lost)));
    }
    for task in tasks {
        task.await.expect("contending task");
    }
    assert!(redsem_core::flush(Duration::from_secs(10)).await);
    let messages = lost.lock().unwrap().clone();
    let _: i64 = data
        .incr("losses", messages.len() as i64)
        .await
        .expect("INCR");
    for message in messages {
        let _: i64 = data.rpush("loss_messages", message).await.expect("RPUSH");
    }
    let _: i64 = data.incr("workers_done", 1).await.expect("INCR");
}

/// Entry point of the worker processes; a no-op in a normal test run.
#[test]
fn chaos_worker_process() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let (data_port, ports) = spec.split_once(':').expect("spec");
    let ports = ports.split(',').map(str::to_owned).collect();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(worker(data_port.to_owned(), ports));
}

fn int(server: &RedisServer, key: &str) -> i64 {
    let v = server.command(&["GET", key]).expect("GET");
    v.as_str().map(|s| s.parse().expect("integer")).unwrap_or(0)
}

/// The most semaphore holders any task saw at once.
fn max_holders(data: &RedisServer) -> i64 {
    let maxima = data
        .command(&["LRANGE", "maxima", "0", "-1"])
        .expect("LRANGE");
    maxima
        .as_array()
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str()?.parse().ok())
        .max()
        .unwrap_or(0)
}

/// The fault schedule; returns how many faults it injected.
fn run_faults(
    single: &mut RedisServer,
    single_proxy: &FaultProxy,
    redlock_proxies: &[FaultProxy],
    redlock_3: &mut RedisServer,
) -> u32 {
    let started = Instant::now();
    let mut faults = 0;
    let mut round = 0;
    while started.elapsed() < SOAK {
        std::thread::sleep(ms(1_500));
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        println!("chaos: fault {} starts at {at}", round % 5);
        match round % 5 {
            0 => {
                single_proxy.reset_all();
                redlock_proxies[0].reset_all();
            }
            1 => {
                // a network stall: every byte is held up 300 ms each way
                single_proxy.latency(ms(300));
                redlock_proxies[1].latency(ms(300));
                std::thread::sleep(ms(600));
                single_proxy.pass();
                redlock_proxies[1].pass();
            }
            2 => {
                single.pause().expect("SIGSTOP");
                std::thread::sleep(ms(1_000));
                single.resume().expect("SIGCONT");
            }
            3 => {
                // Redlock's rule for a node without persistence: it stays
                // down for a lock timeout before it rejoins empty (an
                // earlier return could hand out a hold a live holder has).
                redlock_3.stop().expect("stop node 3");
                std::thread::sleep(ms(3_100));
                redlock_3.start_again().expect("restart node 3");
            }
            _ => {
                // new connections refused for 300 ms, open ones cut
                single_proxy.refuse();
                single_proxy.reset_all();
                std::thread::sleep(ms(300));
                single_proxy.pass();
            }
        }
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        println!("chaos: fault {} ended at {at}", round % 5);
        faults += 1;
        round += 1;
    }
    faults
}

fn join_workers(mut children: Vec<Child>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !children.is_empty() {
        let mut still = Vec::new();
        for mut child in children {
            match child.try_wait().expect("wait") {
                Some(status) => assert!(status.success(), "a worker failed: {status}"),
                None => still.push(child),
            }
        }
        children = still;
        if Instant::now() > deadline {
            for mut child in children {
                let _ = child.kill();
                let _ = child.wait();
            }
            panic!("workers hung after the soak");
        }
        std::thread::sleep(ms(20));
    }
}

#[test]
fn locks_hold_up_under_a_fault_schedule() {
    let data = start_server();
    let mut single = start_server();
    let mut redlock: Vec<RedisServer> = (0..3).map(|_| start_server()).collect();
    let single_proxy = FaultProxy::start(single.addr()).expect("proxy");
    let redlock_proxies: Vec<FaultProxy> = redlock
        .iter()
        .map(|s| FaultProxy::start(s.addr()).expect("proxy"))
        .collect();
    let ports: Vec<String> = std::iter::once(&single_proxy)
        .chain(&redlock_proxies)
        .map(|p| p.port().to_string())
        .collect();
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<Child> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "chaos_worker_process",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(WORKER_ENV, format!("{}:{}", data.port(), ports.join(",")))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn worker")
        })
        .collect();

    let faults = run_faults(
        &mut single,
        &single_proxy,
        &redlock_proxies,
        &mut redlock[2],
    );
    data.command(&["SET", "stop", "1"]).expect("SET stop");
    join_workers(children);

    let ok = |kind: &str| int(&data, &format!("{kind}:ok"));
    let (mutexes, semaphores, redlocks) = (ok("mutex"), ok("semaphore"), ok("redlock"));
    println!(
        "chaos: {faults} faults in {SOAK:?}; acquisitions: mutex {mutexes}, semaphore \
         {semaphores}, redlock {redlocks}; timeouts: busy {}, unreachable {}; losses {}; \
         max semaphore holders {} (limit {LIMIT})",
        int(&data, "errors:busy"),
        int(&data, "errors:unreachable"),
        int(&data, "losses"),
        max_holders(&data),
    );
    let messages = data
        .command(&["LRANGE", "loss_messages", "0", "-1"])
        .expect("LRANGE");
    for message in messages.as_array().unwrap_or_default() {
        println!("chaos: loss {}", message.as_str().unwrap_or_default());
    }
    assert_eq!(int(&data, "workers_done"), PROCESSES as i64);
    assert!(faults >= 10, "too few faults: {faults}");
    assert!(mutexes > 0 && semaphores > 0 && redlocks > 0, "no progress");
    assert_eq!(int(&data, "violations"), 0, "more holders than the limit");
    assert!(max_holders(&data) <= LIMIT);
    assert_eq!(
        int(&data, "mutex:counter"),
        mutexes,
        "lost updates under the mutex"
    );
    assert_eq!(
        int(&data, "redlock:counter"),
        redlocks,
        "lost updates under the Redlock mutex"
    );
    assert_eq!(
        int(&data, "losses"),
        0,
        "a fault shorter than the tolerance cost a hold"
    );
}
