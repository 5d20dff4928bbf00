//! redsem's one background thread: it keeps the timers (acquire retries,
//! per-call bounds, refresh ticks) and runs background jobs (refreshes,
//! releases of dropped guards).
//!
//! It exists so refresh works whatever executor the user runs (tokio, smol, a
//! plain `block_on`) without depending on any of them. Timers live in one
//! ordered table; registering one only wakes the thread when it becomes the
//! earliest, so the common case (a timer later than one already pending)
//! costs a mutex and a map insert, no syscall.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use std::panic::AssertUnwindSafe;

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;

use crate::background::PerProcess;

/// A job run on the driver thread.
pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Something a timer fires: wake a task, or start a job.
pub(crate) enum Fire {
    /// Wake a waiting future.
    Wake(Waker),
    /// Start a job produced on the driver thread when the timer is due.
    Start(Box<dyn FnOnce() -> Job + Send>),
}

/// Identifies a registered timer so it can be cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey(Instant, u64);

struct State {
    timers: BTreeMap<TimerKey, Fire>,
    next_seq: u64,
    /// When the thread will next wake by itself; `None` while it sleeps
    /// without a deadline.
    wake_at: Option<Instant>,
    new_jobs: Vec<Job>,
}

pub(crate) struct Driver {
    state: Mutex<State>,
    thread: Thread,
    notified: AtomicBool,
    /// Nanoseconds since `epoch` when the thread started polling jobs, 0
    /// while it is not polling: what the stall watchdog looks at.
    busy_since: AtomicU64,
    epoch: Instant,
}

static DRIVER: PerProcess<Driver> = PerProcess::new();

/// The driver of this process, started on first use (and again in a child
/// process after `fork()`, which inherits no threads).
pub(crate) fn driver() -> Result<Arc<Driver>, String> {
    DRIVER.get(start)
}

/// How long one poll of the background jobs may take before the watchdog
/// reports a stall.
const STALL_AFTER: Duration = Duration::from_secs(1);

static STALLS: AtomicU64 = AtomicU64::new(0);

/// How many times redsem's background thread was found blocked for more
/// than a second since the process started.
///
/// The thread runs every lock's refresh and background release; a backend
/// call that blocks it (a synchronous client, a `block_on` inside a future)
/// stalls every lock in the process, so each stall is also written to
/// stderr once. A backend must never block (see the
/// [`RedisBackend`](crate::RedisBackend) contract).
///
/// ```
/// assert_eq!(redsem_core::background_stalls(), 0);
/// ```
pub fn background_stalls() -> u64 {
    STALLS.load(Ordering::Relaxed)
}

fn start() -> Result<Arc<Driver>, String> {
    let (tx, rx) = std::sync::mpsc::channel::<Arc<Driver>>();
    let handle = std::thread::Builder::new()
        .name("redsem-driver".into())
        .spawn(move || {
            if let Ok(driver) = rx.recv() {
                driver.run();
            }
        })
        .map_err(|e| format!("cannot start redsem's background thread: {e}"))?;
    let driver = Arc::new(Driver {
        state: Mutex::new(State {
            timers: BTreeMap::new(),
            next_seq: 0,
            wake_at: None,
            new_jobs: Vec::new(),
        }),
        thread: handle.thread().clone(),
        notified: AtomicBool::new(false),
        busy_since: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    tx.send(driver.clone())
        .map_err(|_| "redsem's background thread exited".to_owned())?;
    let watched = Arc::downgrade(&driver);
    // Without a watchdog locks still work; only stalls go unreported.
    let _ = std::thread::Builder::new()
        .name("redsem-watchdog".into())
        .spawn(move || watch(watched));
    Ok(driver)
}

/// Reports (once per stall) when the driver spends more than
/// [`STALL_AFTER`] in one poll of its jobs.
fn watch(driver: std::sync::Weak<Driver>) {
    let mut reported = 0;
    loop {
        std::thread::sleep(STALL_AFTER / 4);
        let Some(driver) = driver.upgrade() else {
            return;
        };
        let since = driver.busy_since.load(Ordering::Acquire);
        let now = driver.epoch.elapsed().as_nanos() as u64;
        if since != 0
            && since != reported
            && now.saturating_sub(since) > STALL_AFTER.as_nanos() as u64
        {
            reported = since;
            STALLS.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "redsem: the background thread has been blocked for over {STALL_AFTER:?} by a \
                 backend call or job; refreshes of every lock in this process are delayed. \
                 Backend futures must not block the thread that polls them."
            );
        }
    }
}

impl Driver {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map inconsistent
        // in a way that matters more than stopping all locks would.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        self.notified.store(true, Ordering::Release);
        self.thread.unpark();
    }

    /// Registers a timer at `at`.
    pub(crate) fn add_timer(&self, at: Instant, fire: Fire) -> TimerKey {
        let mut st = self.lock();
        st.next_seq += 1;
        let key = TimerKey(at, st.next_seq);
        st.timers.insert(key, fire);
        let earlier = st.wake_at.is_none_or(|w| at < w);
        if earlier {
            st.wake_at = Some(at);
        }
        drop(st);
        if earlier {
            self.notify();
        }
        key
    }

    /// Replaces the waker of a pending timer; `false` if it already fired.
    pub(crate) fn update_waker(&self, key: TimerKey, waker: &Waker) -> bool {
        let mut st = self.lock();
        match st.timers.get_mut(&key) {
            Some(Fire::Wake(w)) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            _ => false,
        }
    }

    /// Cancels a timer; `true` if it had not fired yet.
    pub(crate) fn cancel_timer(&self, key: TimerKey) -> bool {
        self.lock().timers.remove(&key).is_some()
    }

    /// Runs `job` on the driver thread.
    pub(crate) fn spawn(&self, job: Job) {
        self.lock().new_jobs.push(job);
        self.notify();
    }

    fn run(self: Arc<Self>) {
        let waker = Waker::from(Arc::new(Unpark(self.clone())));
        let mut cx = Context::from_waker(&waker);
        let mut jobs = FuturesUnordered::new();
        let mut due = Vec::new();
        loop {
            self.notified.store(false, Ordering::Release);
            let now = Instant::now();
            {
                let mut st = self.lock();
                jobs.extend(st.new_jobs.drain(..).map(guard_job));
                while let Some(entry) = st.timers.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    due.push(entry.remove());
                }
                st.wake_at = st.timers.first_key_value().map(|(k, _)| k.0);
            }
            for fire in due.drain(..) {
                match fire {
                    Fire::Wake(w) => w.wake(),
                    Fire::Start(make) => jobs.push(guard_job(make())),
                }
            }
            // A panicking job is dropped; the thread, and every other
            // lock's refresh, goes on.
            let started = (self.epoch.elapsed().as_nanos() as u64).max(1);
            self.busy_since.store(started, Ordering::Release);
            while let Poll::Ready(Some(_)) = jobs.poll_next_unpin(&mut cx) {}
            self.busy_since.store(0, Ordering::Release);
            if self.notified.load(Ordering::Acquire) {
                continue;
            }
            let wake_at = self.lock().wake_at;
            match wake_at {
                Some(at) => {
                    let now = Instant::now();
                    if at > now {
                        std::thread::park_timeout(at - now);
                    }
                }
                None => std::thread::park(),
            }
        }
    }
}

type GuardedJob = futures::future::CatchUnwind<AssertUnwindSafe<Job>>;

fn guard_job(job: Job) -> GuardedJob {
    AssertUnwindSafe(job).catch_unwind()
}

struct Unpark(Arc<Driver>);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.notify();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.notify();
    }
}
