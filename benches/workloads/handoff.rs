//! mutex-handoff: two tasks on one key alternate strictly. The holder
//! acquires, holds 5 ms, waits until the other task is inside `acquire()`,
//! releases (`t_rel_done` when `release()` returns), and does not call
//! `acquire()` again until the other task has acquired. Hand-off =
//! `t_acquired(waiter) - t_rel_done(holder)`.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::backend::Backend;
use crate::report::Outcome;
use crate::spec::{self, Spec};

#[derive(Default)]
struct State {
    /// Every acquisition in order: by which task, when.
    acquired: Vec<(usize, Instant)>,
    /// When the release of acquisition k returned.
    released: Vec<Option<Instant>>,
    in_acquire: [bool; 2],
    exited: [bool; 2],
    held: usize,
    max_held: usize,
}

/// Waits until `cond` holds or `limit` passes (every in-process wait is
/// capped).
async fn wait_for(
    rx: &mut watch::Receiver<State>,
    limit: Instant,
    cond: impl FnMut(&State) -> bool,
) {
    let limit = tokio::time::Instant::from_std(limit);
    let _ = tokio::time::timeout_at(limit, rx.wait_for(cond)).await;
}

pub async fn run(
    spec: Spec,
    backends: &[Backend],
    prefix: &str,
    workload: &str,
    duration: Duration,
) -> Outcome {
    let start = Instant::now();
    let deadline = start + duration;
    let limit = deadline + spec::ACQUIRE_TIMEOUT;
    let (tx, _) = watch::channel(State::default());
    let key = spec::key(&spec, prefix, workload, 0);
    let mut handles = Vec::new();
    for me in 0..2 {
        let other = 1 - me;
        let options = spec::options(spec::LOCK_TTL, spec::ACQUIRE_TIMEOUT);
        let lock = spec::make_lock(&spec, backends, key.clone(), options);
        let tx = tx.clone();
        let mut rx = tx.subscribe();
        handles.push(tokio::spawn(async move {
            let mut o = Outcome::default();
            if me == 1 {
                // Task 2 starts once task 1 has acquired.
                wait_for(&mut rx, limit, |s| !s.acquired.is_empty() || s.exited[0]).await;
            }
            while Instant::now() < deadline {
                tx.send_modify(|s| s.in_acquire[me] = true);
                let result = lock.acquire().await;
                let t_acquired = Instant::now();
                let guard = match result {
                    Ok(g) => g,
                    Err(e) => {
                        tx.send_modify(|s| s.in_acquire[me] = false);
                        o.error(e);
                        continue;
                    }
                };
                let mut k = 0;
                tx.send_modify(|s| {
                    s.in_acquire[me] = false;
                    k = s.acquired.len();
                    s.acquired.push((me, t_acquired));
                    s.released.push(None);
                    s.held += 1;
                    s.max_held = s.max_held.max(s.held);
                });
                tokio::time::sleep(spec.hold).await;
                // The other task must already be waiting when we release.
                wait_for(&mut rx, limit, |s| s.in_acquire[other] || s.exited[other]).await;
                o.hold_sum += t_acquired.elapsed();
                o.holds += 1;
                tx.send_modify(|s| s.held -= 1);
                let released = guard.release().await;
                let t_rel_done = Instant::now();
                tx.send_modify(|s| s.released[k] = Some(t_rel_done));
                if let Err(e) = released {
                    o.error(e);
                }
                // No new acquire() until the other task has acquired.
                wait_for(&mut rx, limit, |s| {
                    s.acquired.len() > k + 1 || s.exited[other]
                })
                .await;
            }
            tx.send_modify(|s| s.exited[me] = true);
            o
        }));
    }
    let mut out = Outcome::default();
    for h in handles {
        let o = h.await.expect("task");
        out.hold_sum += o.hold_sum;
        out.holds += o.holds;
        out.errors += o.errors;
        if out.first_error.is_none() {
            out.first_error = o.first_error;
        }
    }
    out.elapsed = start.elapsed();
    let st = tx.borrow();
    out.per_task = (0..2)
        .map(|t| st.acquired.iter().filter(|(by, _)| *by == t).count() as u64)
        .collect();
    out.max_holders = st.max_held;
    for k in 1..st.acquired.len() {
        let ((prev_by, _), (by, at)) = (st.acquired[k - 1], st.acquired[k]);
        if let (true, Some(rel)) = (by != prev_by, st.released[k - 1]) {
            // Signed: the waiter can see its reply before the holder sees its own.
            let us = if at >= rel {
                (at - rel).as_micros() as i64
            } else {
                -((rel - at).as_micros() as i64)
            };
            out.handoffs_us.push(us);
        }
    }
    out
}
