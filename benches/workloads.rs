//! Load generator for the workloads in `shared/bench/WORKLOADS.md`.
//!
//! ```text
//! PORTS=7101,7102,7103 DURATION_S=5 cargo bench --bench workloads -- mutex-solo
//! benches/run-workloads.sh   # starts private servers and runs every workload
//! ```
//!
//! Takes the workload name as its last argument, reads `PORTS`,
//! `DURATION_S`, `WARMUP_S` and `WAITERS` (idle-waiters), prints one JSON
//! line on stdout. Two additions for profiling: `CYCLES=n` runs the cycle
//! workloads for n cycles instead of `DURATION_S` and reports memory at
//! 10 %, 50 % and 100 % of them; `ALLOC_COUNT=1` counts heap allocations.

#[path = "workloads/alloc.rs"]
mod alloc;
#[path = "workloads/backend.rs"]
mod backend;
#[path = "workloads/cycle.rs"]
mod cycle;
#[path = "workloads/handoff.rs"]
mod handoff;
#[path = "workloads/idle.rs"]
mod idle;
#[path = "workloads/measure.rs"]
mod measure;
#[path = "workloads/report.rs"]
mod report;
#[path = "workloads/spec.rs"]
mod spec;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redsem_redis::redis::{self, aio::MultiplexedConnection, AsyncCommands};

use crate::cycle::Until;
use crate::spec::{Mode, Spec};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// A long run (`CYCLES`) stops at this cap whatever its rate.
const CYCLES_CAP: Duration = Duration::from_secs(30 * 60);

fn main() {
    let workload = std::env::args().next_back().unwrap_or_default();
    let Some(spec) = spec::spec(&workload) else {
        eprintln!("usage: workloads <{}>", spec::NAMES);
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
    let duration = Duration::from_secs_f64(measure::env_f64("DURATION_S", 5.0));
    let warmup = Duration::from_secs_f64(measure::env_f64("WARMUP_S", 0.5));
    let cycles = measure::env_u64("CYCLES").filter(|_| spec.mode == Mode::Cycle);
    let measured = match cycles {
        Some(cycles) => Until::Cycles {
            cycles,
            cap: CYCLES_CAP,
        },
        None => Until::Deadline(duration),
    };
    // Every run ends by itself, whatever a lock does.
    let hard = match (spec.mode, cycles) {
        (Mode::Idle, _) => duration + Duration::from_secs(30),
        (_, Some(_)) => CYCLES_CAP + warmup + spec::ACQUIRE_TIMEOUT * 2,
        _ => duration + warmup + spec::ACQUIRE_TIMEOUT * 2 + Duration::from_secs(30),
    };
    std::thread::spawn(move || {
        std::thread::sleep(hard);
        eprintln!("watchdog: exceeded {hard:?}, exiting");
        std::process::exit(3);
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let line = rt.block_on(run(&workload, spec, &ports, warmup, duration, measured));
    println!("{line}");
}

async fn run(
    workload: &str,
    spec: Spec,
    ports: &[String],
    warmup: Duration,
    duration: Duration,
    measured: Until,
) -> String {
    let sent = Arc::new(AtomicU64::new(0));
    let mut backends = Vec::new();
    let mut admin = Vec::new();
    for port in ports.iter().take(spec.servers) {
        let url = format!("redis://127.0.0.1:{port}/");
        backends.push(backend::connect(&url, &sent).await);
        admin.push(admin_connection(&url).await);
    }
    let warm_key = format!("warm:{workload}");
    let bench_key = format!("bench:{workload}");
    if !warmup.is_zero() {
        match spec.mode {
            Mode::Cycle => {
                cycle::run(spec, &backends, "warm", workload, Until::Deadline(warmup)).await;
            }
            Mode::Handoff => {
                handoff::run(spec, &backends, "warm", workload, warmup).await;
            }
            Mode::Idle => {
                let (_lock, guard) = idle::hold(&spec, &backends, warm_key.clone(), warmup).await;
                idle::run(spec, &backends, &warm_key, warmup, idle::GRACE_WARM).await;
                let _ = guard.release().await;
            }
        }
    }
    for conn in admin.iter_mut() {
        let _: () = conn.flushall().await.expect("FLUSHALL");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let loadavg_1m = measure::loadavg_1m();
    // idle-waiters: the baseline is taken once the holder has the key, the
    // final snapshot before it releases.
    let holder = match spec.mode {
        Mode::Idle => Some(idle::hold(&spec, &backends, bench_key.clone(), duration).await),
        _ => None,
    };
    let before = measure::commandstats(&mut admin).await;
    let sent_before = sent.load(Ordering::Relaxed);
    let counting = alloc::start_if_asked();
    let allocs_before = alloc::totals();
    let mut outcome = match spec.mode {
        Mode::Cycle => cycle::run(spec, &backends, "bench", workload, measured).await,
        Mode::Handoff => handoff::run(spec, &backends, "bench", workload, duration).await,
        Mode::Idle => idle::run(spec, &backends, &bench_key, duration, idle::GRACE_MEASURED).await,
    };
    let allocs_after = alloc::totals();
    let client_cmds = sent.load(Ordering::Relaxed) - sent_before;
    let after = measure::commandstats(&mut admin).await;
    if let Some((_lock, guard)) = holder {
        if let Err(e) = guard.release().await {
            outcome.error(e);
        }
    }
    let allocs = counting.then(|| {
        (
            allocs_after.0 - allocs_before.0,
            allocs_after.1 - allocs_before.1,
        )
    });
    let run = report::Run {
        workload,
        spec,
        server_cmds: measure::delta(&before, &after),
        client_cmds,
        options: options_text(spec),
        loadavg_1m,
        allocs,
    };
    report::line(&run, outcome)
}

async fn admin_connection(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection")
}

fn options_text(spec: Spec) -> String {
    let common = format!(
        "{}; each task builds one lock and reuses it; client: {}; holds and think times: tokio::time::sleep",
        spec::describe(&spec::options(spec::LOCK_TTL, spec::ACQUIRE_TIMEOUT)),
        backend::CLIENT
    );
    match spec.mode {
        Mode::Idle => format!(
            "{common}; waiters: acquire_timeout = the phase length (DURATION_S; WARMUP_S in the warm-up), one Mutex each; holder: lock_timeout DURATION_S+{}s, acquire_timeout {:?}, released after the final snapshot; waiters {}",
            idle::HOLDER_TTL_EXTRA.as_secs(),
            idle::HOLDER_ACQUIRE_TIMEOUT,
            idle::waiters()
        ),
        _ => common,
    }
}
