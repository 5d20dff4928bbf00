//! Load generator for the workloads in `shared/bench/WORKLOADS.md`.
//!
//! ```text
//! PORTS=7101,7102,7103 DURATION_S=5 cargo bench --bench workloads -- mutex-solo
//! benches/run-workloads.sh   # starts private servers and runs every workload
//! ```
//!
//! Takes the workload name as its last argument, reads `PORTS`,
//! `DURATION_S` and `WARMUP_S`, prints one JSON line on stdout.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redsem_core::{
    Arg, BackendError, LockError, LockGuard, LockOptions, MultiSemaphore, Mutex, RedisBackend,
    RedlockMutex, Reply, Script, Semaphore,
};
use redsem_redis::redis::aio::MultiplexedConnection;
use redsem_redis::redis::{self, AsyncCommands};
use redsem_redis::RedisRsBackend;

/// Counts the requests the client sends (round trips), for
/// `client_cmds_per_acq`.
#[derive(Debug)]
struct Counting<B> {
    inner: B,
    sent: Arc<AtomicU64>,
}

#[async_trait]
impl<B: RedisBackend> RedisBackend for Counting<B> {
    async fn eval_sha(&self, s: &Script, k: &[&str], a: &[Arg<'_>]) -> Result<Reply, BackendError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.eval_sha(s, k, a).await
    }
    async fn eval(&self, s: &Script, k: &[&str], a: &[Arg<'_>]) -> Result<Reply, BackendError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.eval(s, k, a).await
    }
    async fn set_nx_px(&self, key: &str, value: &str, ttl_ms: u64) -> Result<bool, BackendError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.set_nx_px(key, value, ttl_ms).await
    }
}

type Backend = Arc<Counting<RedisRsBackend<MultiplexedConnection>>>;

#[derive(Clone, Copy)]
struct Spec {
    servers: usize,
    tasks: usize,
    hold: Duration,
    think: Duration,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Mutex,
    Semaphore { limit: u32 },
    Multi { limit: u32, permits: u32 },
    ManyKeys,
    Redlock,
}

fn spec(workload: &str) -> Option<Spec> {
    let ms = Duration::from_millis;
    let (servers, tasks, hold, kind) = match workload {
        "mutex-solo" => (1, 1, ms(0), Kind::Mutex),
        "mutex-contended" => (1, 16, ms(1), Kind::Mutex),
        "semaphore-contended" => (1, 16, ms(1), Kind::Semaphore { limit: 4 }),
        "multisemaphore-contended" => (
            1,
            16,
            ms(1),
            Kind::Multi {
                limit: 8,
                permits: 2,
            },
        ),
        "many-keys" => (1, 256, ms(0), Kind::ManyKeys),
        "redlock-mutex-solo" => (3, 1, ms(0), Kind::Redlock),
        "redlock-mutex-contended" => (3, 16, ms(1), Kind::Redlock),
        _ => return None,
    };
    Some(Spec {
        servers,
        tasks,
        hold,
        think: hold,
        kind,
    })
}

enum Lock {
    Mutex(Mutex<Backend>),
    Semaphore(Semaphore<Backend>),
    Multi(MultiSemaphore<Backend>),
    Redlock(RedlockMutex<Backend>),
}

impl Lock {
    async fn acquire(&self) -> Result<LockGuard, LockError> {
        match self {
            Lock::Mutex(l) => l.acquire().await,
            Lock::Semaphore(l) => l.acquire().await,
            Lock::Multi(l) => l.acquire().await,
            Lock::Redlock(l) => l.acquire().await,
        }
    }
}

fn options() -> LockOptions {
    LockOptions::builder()
        .lock_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(60))
        .build()
        .expect("valid options")
}

fn make_lock(spec: &Spec, backends: &[Backend], prefix: &str, workload: &str, task: usize) -> Lock {
    let key = match spec.kind {
        Kind::ManyKeys => format!("{prefix}:many-keys:{task}"),
        _ => format!("{prefix}:{workload}"),
    };
    let b = backends[0].clone();
    let built = match spec.kind {
        Kind::Mutex | Kind::ManyKeys => Mutex::with_options(b, key, options()).map(Lock::Mutex),
        Kind::Semaphore { limit } => {
            Semaphore::with_options(b, key, limit, options()).map(Lock::Semaphore)
        }
        Kind::Multi { limit, permits } => {
            MultiSemaphore::with_options(b, key, limit, permits, options()).map(Lock::Multi)
        }
        Kind::Redlock => {
            RedlockMutex::with_options(backends.to_vec(), key, options()).map(Lock::Redlock)
        }
    };
    built.expect("valid lock")
}

#[derive(Default)]
struct TaskStats {
    cycles_us: Vec<u64>,
    waits_us: Vec<u64>,
    holds_us: Vec<u64>,
    errors: u64,
}

async fn run_phase(
    spec: Spec,
    backends: &[Backend],
    prefix: &str,
    workload: &str,
    duration: Duration,
) -> (Vec<TaskStats>, Duration, usize) {
    // One counter per key: many-keys has a key per task.
    let keys = if spec.kind == Kind::ManyKeys {
        spec.tasks
    } else {
        1
    };
    let holders: Arc<Vec<AtomicUsize>> = Arc::new((0..keys).map(|_| AtomicUsize::new(0)).collect());
    let max_holders = Arc::new(AtomicUsize::new(0));
    let permits = match spec.kind {
        Kind::Multi { permits, .. } => permits as usize,
        _ => 1,
    };
    let start = Instant::now();
    let deadline = start + duration;
    let mut handles = Vec::new();
    for task in 0..spec.tasks {
        let lock = make_lock(&spec, backends, prefix, workload, task);
        let (holders, max_holders) = (holders.clone(), max_holders.clone());
        let slot = task % keys;
        handles.push(tokio::spawn(async move {
            let holders = &holders[slot];
            let mut stats = TaskStats::default();
            while Instant::now() < deadline {
                let t_a = Instant::now();
                let guard = match lock.acquire().await {
                    Ok(g) => g,
                    Err(_) => {
                        stats.errors += 1;
                        continue;
                    }
                };
                let t_b = Instant::now();
                let now = holders.fetch_add(permits, Ordering::SeqCst) + permits;
                max_holders.fetch_max(now, Ordering::SeqCst);
                if !spec.hold.is_zero() {
                    tokio::time::sleep(spec.hold).await;
                }
                let held = t_b.elapsed();
                holders.fetch_sub(permits, Ordering::SeqCst);
                if guard.release().await.is_err() {
                    stats.errors += 1;
                }
                let t_c = Instant::now();
                stats.cycles_us.push((t_c - t_a).as_micros() as u64);
                stats.waits_us.push((t_b - t_a).as_micros() as u64);
                stats.holds_us.push(held.as_micros() as u64);
                if !spec.think.is_zero() {
                    tokio::time::sleep(spec.think).await;
                }
            }
            stats
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.push(h.await.expect("task"));
    }
    (all, start.elapsed(), max_holders.load(Ordering::SeqCst))
}

async fn commandstats(conns: &mut [MultiplexedConnection]) -> (u64, Vec<(String, u64)>) {
    let mut total = 0;
    let mut by_name: Vec<(String, u64)> = Vec::new();
    for conn in conns.iter_mut() {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(conn)
            .await
            .expect("INFO");
        for line in info.lines() {
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, fields)) = rest.split_once(':') else {
                continue;
            };
            if name == "info" {
                continue;
            }
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            total += calls;
            match by_name.iter_mut().find(|(n, _)| n == name) {
                Some((_, c)) => *c += calls,
                None => by_name.push((name.to_owned(), calls)),
            }
        }
    }
    (total, by_name)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let workload = std::env::args().next_back().unwrap_or_default();
    let Some(spec) = spec(&workload) else {
        eprintln!("usage: workloads <mutex-solo|mutex-contended|semaphore-contended|multisemaphore-contended|many-keys|redlock-mutex-solo|redlock-mutex-contended>");
        if workload == "--bench" || workload.is_empty() {
            return; // `cargo bench` without a workload: nothing to do
        }
        std::process::exit(2);
    };
    let ports: Vec<String> = std::env::var("PORTS")
        .unwrap_or_else(|_| "7101,7102,7103".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let duration = Duration::from_secs_f64(env_f64("DURATION_S", 5.0));
    let warmup = Duration::from_secs_f64(env_f64("WARMUP_S", 0.5));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let sent = Arc::new(AtomicU64::new(0));
        let mut backends = Vec::new();
        let mut admin = Vec::new();
        for port in ports.iter().take(spec.servers) {
            let url = format!("redis://127.0.0.1:{port}/");
            let conn = RedisRsBackend::connect(&url).await.expect("connect");
            backends.push(Arc::new(Counting {
                inner: conn,
                sent: sent.clone(),
            }));
            admin.push(
                redis::Client::open(url)
                    .expect("url")
                    .get_multiplexed_async_connection()
                    .await
                    .expect("admin"),
            );
        }
        run_phase(spec, &backends, "warm", &workload, warmup).await;
        for conn in admin.iter_mut() {
            let _: () = conn.flushall().await.expect("FLUSHALL");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (base_total, base_by_name) = commandstats(&mut admin).await;
        let sent_before = sent.load(Ordering::Relaxed);

        let (stats, elapsed, max_holders) =
            run_phase(spec, &backends, "bench", &workload, duration).await;

        let sent_after = sent.load(Ordering::Relaxed);
        let (total, by_name) = commandstats(&mut admin).await;
        report(
            &workload,
            spec,
            &stats,
            elapsed,
            max_holders,
            total - base_total,
            &by_name,
            &base_by_name,
            sent_after - sent_before,
        );
    });
}

#[allow(clippy::too_many_arguments)]
fn report(
    workload: &str,
    spec: Spec,
    stats: &[TaskStats],
    elapsed: Duration,
    max_holders: usize,
    server_cmds: u64,
    by_name: &[(String, u64)],
    base_by_name: &[(String, u64)],
    client_cmds: u64,
) {
    let per_task: Vec<u64> = stats.iter().map(|s| s.cycles_us.len() as u64).collect();
    let acquisitions: u64 = per_task.iter().sum();
    let acq = acquisitions.max(1) as f64;
    let errors: u64 = stats.iter().map(|s| s.errors).sum();
    let mut cycles: Vec<u64> = stats
        .iter()
        .flat_map(|s| s.cycles_us.iter().copied())
        .collect();
    let mut waits: Vec<u64> = stats
        .iter()
        .flat_map(|s| s.waits_us.iter().copied())
        .collect();
    let holds: Vec<u64> = stats
        .iter()
        .flat_map(|s| s.holds_us.iter().copied())
        .collect();
    cycles.sort_unstable();
    waits.sort_unstable();
    let contended = spec.tasks > 1 && spec.kind != Kind::ManyKeys;
    let limit = match spec.kind {
        Kind::Semaphore { limit } | Kind::Multi { limit, .. } => limit as usize,
        _ => 1,
    };
    let fairness = if spec.tasks > 1 {
        let sum: f64 = per_task.iter().map(|&x| x as f64).sum();
        let sq: f64 = per_task.iter().map(|&x| (x as f64) * (x as f64)).sum();
        format!("{:.4}", sum * sum / (spec.tasks as f64 * sq.max(1.0)))
    } else {
        "null".into()
    };
    let us = |v: u64| v.to_string();
    let ms = |v: u64| format!("{:.3}", v as f64 / 1000.0);
    let (p50, p99) = if contended {
        ("null".into(), "null".into())
    } else {
        (us(percentile(&cycles, 0.5)), us(percentile(&cycles, 0.99)))
    };
    let (w50, w99, wmax) = if contended {
        (
            ms(percentile(&waits, 0.5)),
            ms(percentile(&waits, 0.99)),
            ms(waits.last().copied().unwrap_or(0)),
        )
    } else {
        ("null".into(), "null".into(), "null".into())
    };
    let by_name_json: Vec<String> = by_name
        .iter()
        .map(|(n, c)| {
            let base = base_by_name
                .iter()
                .find(|(b, _)| b == n)
                .map_or(0, |(_, c)| *c);
            (n, c.saturating_sub(base))
        })
        .filter(|(_, c)| *c > 0)
        .map(|(n, c)| format!("\"{n}\":{:.2}", c as f64 / acq))
        .collect();
    let notes = if max_holders > limit {
        "SAFETY VIOLATION"
    } else {
        ""
    };
    let hold_mean = holds.iter().sum::<u64>() as f64 / holds.len().max(1) as f64 / 1000.0;
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "null".into());
    println!(
        "{{\"impl\":\"redsem\",\"workload\":\"{workload}\",\"ops_per_s\":{:.1},\"p50_us\":{p50},\"p99_us\":{p99},\"wait_p50_ms\":{w50},\"wait_p99_ms\":{w99},\"cmds_per_acq\":{:.2},\"max_holders\":{max_holders},\"fairness\":{fairness},\"notes\":\"{notes}\",\"client_cmds_per_acq\":{:.2},\"server_cmds_by_name_per_acq\":{{{}}},\"wait_max_ms\":{wmax},\"p90_us\":{},\"p999_us\":{},\"max_us\":{},\"per_task_min_max\":[{},{}],\"hold_mean_ms\":{hold_mean:.3},\"acquisitions\":{acquisitions},\"elapsed_s\":{:.3},\"errors\":{errors},\"loadavg_1m\":{load},\"lib\":\"redsem {} (redis-rs 1)\",\"options\":\"lock_timeout 10s, acquire_timeout 60s, retry 10ms, refresh 8s, tokio::time::sleep\"}}",
        acquisitions as f64 / elapsed.as_secs_f64(),
        server_cmds as f64 / acq,
        client_cmds as f64 / acq,
        by_name_json.join(","),
        percentile(&cycles, 0.9),
        percentile(&cycles, 0.999),
        cycles.last().copied().unwrap_or(0),
        per_task.iter().min().copied().unwrap_or(0),
        per_task.iter().max().copied().unwrap_or(0),
        elapsed.as_secs_f64(),
        env!("CARGO_PKG_VERSION"),
    );
}
