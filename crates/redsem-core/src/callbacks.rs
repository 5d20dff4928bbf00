//! Runs users' `on_lock_lost` callbacks on a thread of their own, never on
//! redsem's timer thread and never under a hold's locks: a callback that
//! blocks (or waits for another lock) delays only later callbacks, never a
//! refresh.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::background::PerProcess;
use crate::error::LockError;
use crate::options::LostCallback;

struct Runner {
    queue: Mutex<Sender<(LostCallback, LockError)>>,
    /// Callbacks queued and not yet finished.
    pending: Mutex<u64>,
    idle: Condvar,
}

static RUNNER: PerProcess<Runner> = PerProcess::new();

fn start() -> Result<Arc<Runner>, String> {
    let (tx, rx) = channel::<(LostCallback, LockError)>();
    let runner = Arc::new(Runner {
        queue: Mutex::new(tx),
        pending: Mutex::new(0),
        idle: Condvar::new(),
    });
    let on_thread = runner.clone();
    std::thread::Builder::new()
        .name("redsem-callbacks".into())
        .spawn(move || {
            for (callback, err) in rx {
                // A panicking callback must not stop the ones after it.
                let _ = catch_unwind(AssertUnwindSafe(|| callback(&err)));
                let mut pending = on_thread.pending.lock().unwrap_or_else(|e| e.into_inner());
                *pending = pending.saturating_sub(1);
                on_thread.idle.notify_all();
            }
        })
        .map_err(|e| format!("cannot start redsem's callback thread: {e}"))?;
    Ok(runner)
}

/// Queues `callback(&err)`; callbacks run one at a time, in report order.
pub(crate) fn report(callback: LostCallback, err: LockError) {
    match RUNNER.get(start) {
        Ok(runner) => {
            *runner.pending.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            let queue = runner.queue.lock().unwrap_or_else(|e| e.into_inner());
            let _ = queue.send((callback, err));
        }
        // No thread could be started: run it here rather than lose the
        // report (still outside every lock).
        Err(_) => {
            let _ = catch_unwind(AssertUnwindSafe(|| callback(&err)));
        }
    }
}

/// Waits (at most 10 s: a callback may block) until every queued callback
/// has run; for a manual clock's `advance`.
pub(crate) fn settle() {
    let Ok(runner) = RUNNER.get(start) else {
        return;
    };
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut pending = runner.pending.lock().unwrap_or_else(|e| e.into_inner());
    while *pending > 0 && Instant::now() < give_up {
        pending = runner
            .idle
            .wait_timeout(pending, Duration::from_millis(100))
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}
