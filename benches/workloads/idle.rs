//! idle-waiters: one holder keeps the key for the whole phase while
//! `WAITERS` tasks each call `acquire()` once, with the phase length as
//! their acquire timeout, so all of them give up at its end. What it
//! measures is the load waiting puts on Redis, and the client's memory.

use std::time::{Duration, Instant};

use redsem_core::{AcquireLimit, LockError, LockGuard};

use crate::backend::Backend;
use crate::measure;
use crate::report::{Idle, Outcome};
use crate::spec::{self, Lock, Spec};

/// The holder outlives the phase by this much.
pub const HOLDER_TTL_EXTRA: Duration = Duration::from_secs(30);
/// The holder acquires a freshly flushed key.
pub const HOLDER_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after the phase the harness still waits for waiters.
pub const GRACE_WARM: Duration = Duration::from_secs(3);
pub const GRACE_MEASURED: Duration = Duration::from_secs(15);

pub fn waiters() -> usize {
    measure::env_u64("WAITERS").map_or(1000, |n| n as usize)
}

/// Takes the key for the phase of length `phase`; the lock object is kept
/// with the guard.
pub async fn hold(
    spec: &Spec,
    backends: &[Backend],
    key: String,
    phase: Duration,
) -> (Lock, LockGuard) {
    let options = spec::options(phase + HOLDER_TTL_EXTRA, HOLDER_ACQUIRE_TIMEOUT);
    let lock = spec::make_lock(spec, backends, key, options);
    match lock.acquire().await {
        Ok(guard) => (lock, guard),
        Err(e) => {
            eprintln!("holder acquire: {e}");
            std::process::exit(1);
        }
    }
}

enum Waited {
    TimedOut,
    Acquired(Result<(), LockError>),
    Failed(LockError),
}

/// Runs the waiters against the held `key`; memory is read once the last
/// one has given up (or at the cap, `phase + grace`).
pub async fn run(
    spec: Spec,
    backends: &[Backend],
    key: &str,
    phase: Duration,
    grace: Duration,
) -> Outcome {
    let n = waiters();
    let start = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let options = spec::options(spec::LOCK_TTL, phase);
        let lock = spec::make_lock(&spec, backends, key.to_owned(), options);
        handles.push(tokio::spawn(async move {
            let waited = match lock.acquire().await {
                // The holder still has the key: a mutual-exclusion failure.
                Ok(guard) => Waited::Acquired(guard.release().await),
                Err(LockError::Timeout {
                    limit: AcquireLimit::Timeout(_),
                    ..
                }) => Waited::TimedOut,
                Err(e) => Waited::Failed(e),
            };
            (waited, Instant::now())
        }));
    }
    let cap = tokio::time::Instant::from_std(start + phase + grace);
    let mut o = Outcome::default();
    let mut idle = Idle {
        waiters: n,
        ..Idle::default()
    };
    let mut last = start;
    for mut h in handles {
        match tokio::time::timeout_at(cap, &mut h).await {
            Ok(Ok((waited, done))) => {
                last = last.max(done);
                match waited {
                    Waited::TimedOut => idle.timeouts += 1,
                    Waited::Acquired(released) => {
                        idle.acquired += 1;
                        if let Err(e) = released {
                            o.error(e);
                        }
                    }
                    Waited::Failed(e) => o.error(e),
                }
            }
            Ok(Err(e)) => o.error(format!("waiter task: {e}")),
            Err(_) => {
                idle.stragglers += 1;
                h.abort();
            }
        }
    }
    o.elapsed = if idle.stragglers > 0 {
        start.elapsed()
    } else {
        last - start
    };
    // the holder, plus any waiter that got the key alongside it
    o.max_holders = 1 + usize::from(idle.acquired > 0);
    idle.rss_mb = measure::vm_rss_mb();
    o.idle = Some(idle);
    o
}
