//! Mutual exclusion under load: several OS processes, many tasks each,
//! contend on one mutex, one semaphore and one Redlock mutex. The critical
//! sections do a deliberately non-atomic read-modify-write on a Redis
//! counter (GET, pause, SET), so any overlap loses an update; semaphore
//! holders count themselves and record any excess over the limit.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::real_node::start_server;
use redsem_core::{LockOptions, Mutex, RedisBackend, RedlockMutex, Semaphore};
use redsem_redis::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redsem_redis::redis::{self, AsyncCommands};
use redsem_redis::RedisRsBackend;
use redsem_testing::RedisServer;

const PROCESSES: usize = 3;
const TASKS: usize = 6;
const ROUNDS: usize = 15;
const LIMIT: i64 = 3;
const WORKER_ENV: &str = "REDSEM_EXCLUSION_WORKER";

fn options() -> LockOptions {
    LockOptions::builder()
        .lock_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(60))
        .command_timeout(Duration::from_millis(500))
        .build()
        .expect("valid options")
}

async fn manager(port: &str) -> ConnectionManager {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(100))
        .set_connection_timeout(Some(Duration::from_millis(500)));
    ConnectionManager::new_with_config(client, config)
        .await
        .expect("connect")
}

/// GET, pause, SET: correct only under mutual exclusion.
async fn unsafe_increment(conn: &mut ConnectionManager, key: &str) {
    let seen: Option<i64> = conn.get(key).await.expect("GET");
    tokio::time::sleep(Duration::from_micros(300)).await;
    let _: () = conn.set(key, seen.unwrap_or(0) + 1).await.expect("SET");
}

async fn worker(mode: &str, ports: Vec<String>) {
    let mut data = manager(&ports[0]).await;
    // Connect everything first, then report ready (the Redlock test stops a
    // node only once every worker is connected).
    let mut connections = Vec::new();
    for _ in 0..TASKS {
        let mut backends = Vec::new();
        for port in &ports {
            backends
                .push(Arc::new(RedisRsBackend::new(manager(port).await)) as Arc<dyn RedisBackend>);
        }
        connections.push(backends);
    }
    let _: i64 = data.incr("workers_ready", 1).await.expect("INCR");
    let mut tasks = Vec::new();
    for backends in connections {
        let mut data = data.clone();
        let mode = mode.to_owned();
        tasks.push(tokio::spawn(async move {
            match mode.as_str() {
                "mutex" => {
                    let mutex =
                        Mutex::with_options(backends[0].clone(), "exclusion", options()).unwrap();
                    for _ in 0..ROUNDS {
                        let g = mutex.acquire().await.expect("acquire mutex");
                        unsafe_increment(&mut data, "counter").await;
                        g.release().await.expect("release mutex");
                    }
                }
                "semaphore" => {
                    let sem = Semaphore::with_options(
                        backends[0].clone(),
                        "exclusion",
                        LIMIT as u32,
                        options(),
                    )
                    .unwrap();
                    for _ in 0..ROUNDS {
                        let g = sem.acquire().await.expect("acquire semaphore");
                        let holders: i64 = data.incr("holders", 1).await.expect("INCR");
                        if holders > LIMIT {
                            let _: i64 = data.incr("violations", 1).await.expect("INCR");
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        let _: i64 = data.decr("holders", 1).await.expect("DECR");
                        g.release().await.expect("release semaphore");
                    }
                }
                "redlock" => {
                    let mutex =
                        RedlockMutex::with_options(backends, "exclusion", options()).unwrap();
                    for _ in 0..ROUNDS {
                        let g = mutex.acquire().await.expect("acquire redlock mutex");
                        unsafe_increment(&mut data, "counter").await;
                        // A failed release (a node down) only delays others.
                        let _ = g.release().await;
                    }
                }
                other => panic!("unknown mode {other}"),
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker task");
    }
    let _: i64 = data.incr("workers_done", 1).await.expect("INCR");
}

/// Entry point of the worker processes; a no-op in a normal test run.
#[test]
fn exclusion_worker_process() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let mut parts = spec.split(':');
    let mode = parts.next().expect("mode").to_owned();
    let ports: Vec<String> = parts
        .next()
        .expect("ports")
        .split(',')
        .map(str::to_owned)
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(worker(&mode, ports));
}

fn spawn_workers(mode: &str, servers: &[&RedisServer]) -> Vec<Child> {
    let ports: Vec<String> = servers.iter().map(|s| s.port().to_string()).collect();
    let exe = std::env::current_exe().expect("test binary");
    (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "exclusion_worker_process",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(WORKER_ENV, format!("{mode}:{}", ports.join(",")))
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn worker process")
        })
        .collect()
}

/// Waits for the workers (bounded); kills them all if one fails or hangs.
fn join_workers(mut children: Vec<Child>) {
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut failed = None;
    while failed.is_none() && !children.is_empty() {
        assert!(
            Instant::now() < deadline || failed.is_some(),
            "workers hung"
        );
        let mut still = Vec::new();
        for mut child in children {
            match child.try_wait().expect("wait") {
                Some(status) if !status.success() => failed = Some(status),
                Some(_) => {}
                None => still.push(child),
            }
        }
        children = still;
        if Instant::now() >= deadline {
            failed = failed.or(Some(std::process::ExitStatus::default()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        failed.is_none(),
        "a worker process failed or hung: {failed:?}"
    );
}

fn int(server: &RedisServer, key: &str) -> i64 {
    let v = server.command(&["GET", key]).expect("GET");
    v.as_str().map(|s| s.parse().expect("integer")).unwrap_or(0)
}

#[test]
fn mutex_across_processes_loses_no_update() {
    let server = start_server();
    join_workers(spawn_workers("mutex", &[&server]));
    assert_eq!(int(&server, "workers_done"), PROCESSES as i64);
    assert_eq!(
        int(&server, "counter"),
        (PROCESSES * TASKS * ROUNDS) as i64,
        "lost updates"
    );
}

#[test]
fn semaphore_across_processes_never_exceeds_its_limit() {
    let server = start_server();
    join_workers(spawn_workers("semaphore", &[&server]));
    assert_eq!(int(&server, "workers_done"), PROCESSES as i64);
    assert_eq!(int(&server, "violations"), 0, "more holders than the limit");
    assert_eq!(int(&server, "holders"), 0);
}

#[test]
fn redlock_across_processes_with_a_node_down_loses_no_update() {
    let servers = [start_server(), start_server(), start_server()];
    let children = spawn_workers("redlock", &servers.iter().collect::<Vec<_>>());
    let [first, second, mut third] = servers;
    // Once every worker is connected and running, take node 3 down for
    // part of the run, then bring it back.
    let deadline = Instant::now() + Duration::from_secs(60);
    while int(&first, "workers_ready") < PROCESSES as i64 || int(&first, "counter") < 10 {
        assert!(Instant::now() < deadline, "workers made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    third.stop().expect("stop node 3");
    let finished_before_the_fault = int(&first, "workers_done");
    std::thread::sleep(Duration::from_millis(500));
    let counter_at_restart = int(&first, "counter");
    third.start_again().expect("restart node 3");
    join_workers(children);
    assert_eq!(
        finished_before_the_fault, 0,
        "the node went down after the run: nothing tested"
    );
    assert!(
        counter_at_restart < (PROCESSES * TASKS * ROUNDS) as i64,
        "the run ended during the outage"
    );
    assert_eq!(int(&first, "workers_done"), PROCESSES as i64);
    assert_eq!(
        int(&first, "counter"),
        (PROCESSES * TASKS * ROUNDS) as i64,
        "lost updates"
    );
    drop(second);
}
