//! Runs users' `on_lock_lost` callbacks on a thread of their own, never on
//! redsem's timer thread and never under a hold's locks: a callback that
//! blocks (or waits for another lock) delays only later callbacks, never a
//! refresh.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

use crate::background::PerProcess;
use crate::error::LockError;
use crate::options::LostCallback;

struct Runner {
    queue: Mutex<Sender<(LostCallback, LockError)>>,
}

static RUNNER: PerProcess<Runner> = PerProcess::new();

fn start() -> Result<Arc<Runner>, String> {
    let (tx, rx) = channel::<(LostCallback, LockError)>();
    std::thread::Builder::new()
        .name("redsem-callbacks".into())
        .spawn(move || {
            for (callback, err) in rx {
                // A panicking callback must not stop the ones after it.
                let _ = catch_unwind(AssertUnwindSafe(|| callback(&err)));
            }
        })
        .map_err(|e| format!("cannot start redsem's callback thread: {e}"))?;
    Ok(Arc::new(Runner {
        queue: Mutex::new(tx),
    }))
}

/// Queues `callback(&err)`; callbacks run one at a time, in report order.
pub(crate) fn report(callback: LostCallback, err: LockError) {
    match RUNNER.get(start) {
        Ok(runner) => {
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
