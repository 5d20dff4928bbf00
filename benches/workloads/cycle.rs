//! The common task loop (solo, contended, many-keys), and its long form:
//! a fixed number of cycles with memory read at 10 %, 50 % and 100 %.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::report::{Checkpoint, Outcome};
use crate::spec::{self, Kind, Spec};
use crate::{alloc, measure};

/// When tasks stop starting cycles.
#[derive(Clone, Copy)]
pub enum Until {
    /// `DURATION_S` after the start (then drain).
    Deadline(Duration),
    /// After `cycles` cycles over all tasks, or at `cap`, whichever comes first.
    Cycles { cycles: u64, cap: Duration },
}

/// Percentages of a long run at which memory is read.
const CHECKPOINTS: [u64; 3] = [10, 50, 100];

struct Shared {
    /// In-process holder count per key (a key per task in many-keys).
    holders: Vec<AtomicUsize>,
    max_holders: AtomicUsize,
    done: AtomicU64,
    checkpoints: Mutex<Vec<Checkpoint>>,
}

pub async fn run(
    spec: Spec,
    backends: &[Backend],
    prefix: &str,
    workload: &str,
    until: Until,
) -> Outcome {
    let keys = if spec.kind == Kind::ManyKeys {
        spec.tasks
    } else {
        1
    };
    let shared = Arc::new(Shared {
        holders: (0..keys).map(|_| AtomicUsize::new(0)).collect(),
        max_holders: AtomicUsize::new(0),
        done: AtomicU64::new(0),
        checkpoints: Mutex::new(Vec::new()),
    });
    let permits = match spec.kind {
        Kind::Multi { permits, .. } => permits as usize,
        _ => 1,
    };
    // Long runs keep every sample in memory allocated (and touched) up
    // front, so the harness's own buffers do not look like growth.
    let reserve = match until {
        Until::Cycles { cycles, .. } => cycles as usize,
        Until::Deadline(_) => 0,
    };
    let start = Instant::now();
    let mut handles = Vec::new();
    for task in 0..spec.tasks {
        let options = spec::options(spec::LOCK_TTL, spec::ACQUIRE_TIMEOUT);
        let lock = spec::make_lock(
            &spec,
            backends,
            spec::key(&spec, prefix, workload, task),
            options,
        );
        let shared = shared.clone();
        let slot = task % keys;
        handles.push(tokio::spawn(async move {
            let holders = &shared.holders[slot];
            let mut o = Outcome {
                cycles_us: touched(reserve),
                waits_us: touched(reserve),
                ..Outcome::default()
            };
            let mut n = 0;
            loop {
                let go = match until {
                    Until::Deadline(d) => start.elapsed() < d,
                    Until::Cycles { cycles, cap } => {
                        shared.done.load(Ordering::Relaxed) < cycles && start.elapsed() < cap
                    }
                };
                if !go {
                    break;
                }
                let t_a = Instant::now();
                let guard = match lock.acquire().await {
                    Ok(g) => g,
                    Err(e) => {
                        o.error(e);
                        continue;
                    }
                };
                let t_b = Instant::now();
                n += 1;
                let now = holders.fetch_add(permits, Ordering::SeqCst) + permits;
                shared.max_holders.fetch_max(now, Ordering::SeqCst);
                if !spec.hold.is_zero() {
                    tokio::time::sleep(spec.hold).await;
                    o.hold_sum += t_b.elapsed();
                    o.holds += 1;
                }
                holders.fetch_sub(permits, Ordering::SeqCst);
                if let Err(e) = guard.release().await {
                    o.error(e);
                }
                let t_c = Instant::now();
                o.cycles_us.push(micros(t_c - t_a));
                o.waits_us.push(micros(t_b - t_a));
                if let Until::Cycles { cycles, .. } = until {
                    let total = shared.done.fetch_add(1, Ordering::Relaxed) + 1;
                    checkpoint(&shared, total, cycles, start);
                }
                if !spec.think.is_zero() {
                    tokio::time::sleep(spec.think).await;
                }
            }
            o.per_task.push(n);
            o
        }));
    }
    let mut all = Outcome::default();
    for h in handles {
        let o = h.await.expect("task");
        all.per_task.extend(o.per_task);
        all.cycles_us.extend(o.cycles_us);
        all.waits_us.extend(o.waits_us);
        all.hold_sum += o.hold_sum;
        all.holds += o.holds;
        all.errors += o.errors;
        if all.first_error.is_none() {
            all.first_error = o.first_error;
        }
    }
    all.elapsed = start.elapsed();
    all.max_holders = shared.max_holders.load(Ordering::SeqCst);
    all.checkpoints = std::mem::take(&mut *shared.checkpoints.lock().expect("checkpoints"));
    all
}

/// Reads memory when `total` crosses a checkpoint of `cycles`.
fn checkpoint(shared: &Shared, total: u64, cycles: u64, start: Instant) {
    for pct in CHECKPOINTS {
        if total == (cycles * pct / 100).max(1) {
            let cp = Checkpoint {
                pct,
                cycles: total,
                at: start.elapsed(),
                rss_mb: measure::vm_rss_mb(),
                live_heap_mb: alloc::enabled().then(alloc::live_mb),
            };
            shared.checkpoints.lock().expect("checkpoints").push(cp);
        }
    }
}

/// An empty vector with room for `n` samples, its pages already resident.
fn touched(n: usize) -> Vec<u32> {
    let mut v = vec![u32::MAX; n];
    std::hint::black_box(&mut v);
    v.clear();
    v
}

pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
