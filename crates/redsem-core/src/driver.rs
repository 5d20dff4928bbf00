//! redsem's one background thread: it keeps the timers (acquire retries,
//! per-call bounds, refresh ticks) and runs background jobs (refreshes,
//! releases of dropped guards).
//!
//! It exists so refresh works whatever executor the user runs (tokio, smol, a
//! plain `block_on`) without depending on any of them. Timers live in one
//! ordered table; registering one only wakes the thread when it becomes the
//! earliest, so the common case (a timer later than one already pending)
//! costs a mutex and a map insert, no syscall.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use std::panic::AssertUnwindSafe;

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;

use crate::background::PerProcess;
use crate::clock::Clock;

/// A job run on the driver thread.
pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Something a timer fires: wake a task, or start a job.
pub(crate) enum Fire {
    /// Wake a waiting future.
    Wake(Waker),
    /// Start a job produced on the driver thread when the timer is due.
    Start(Box<dyn FnOnce() -> Job + Send>),
}

/// Identifies a registered timer so it can be cancelled: its clock, its
/// due time on that clock, and a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey(usize, Instant, u64);

/// The timers of one clock, ordered by due time on that clock.
struct ClockTimers {
    clock: Clock,
    timers: BTreeMap<TimerKey, Fire>,
}

struct State {
    /// The system clock's timers, kept even when empty: nearly every timer
    /// is on it, and it needs no lookup (nor a new tree after each empty
    /// spell).
    system: BTreeMap<TimerKey, Fire>,
    /// Manual clocks' timers by clock id, dropped when empty.
    manual: HashMap<usize, ClockTimers>,
    next_seq: u64,
    /// When the thread will next wake by itself (real time); `None` while
    /// it sleeps without a deadline.
    wake_at: Option<Instant>,
    new_jobs: Vec<Job>,
    /// `settle` tickets handed out, and served (an iteration that began
    /// after the ticket was taken ended with nothing left to do).
    requested: u64,
    served: u64,
}

impl State {
    /// The earliest due timer of every clock, as a real instant.
    fn next_wake(&self) -> Option<Instant> {
        let now = Instant::now();
        let system = self.system.first_key_value().map(|(key, _)| key.1);
        let manual = self.manual.values().filter_map(|c| {
            let (key, _) = c.timers.first_key_value()?;
            Some(now + key.1.saturating_duration_since(c.clock.now()))
        });
        system.into_iter().chain(manual).min()
    }

    /// The timers of clock `id`, if it has any table.
    fn timers_mut(&mut self, id: usize) -> Option<&mut BTreeMap<TimerKey, Fire>> {
        match id {
            SYSTEM => Some(&mut self.system),
            id => self.manual.get_mut(&id).map(|c| &mut c.timers),
        }
    }
}

/// The system clock's id.
const SYSTEM: usize = 0;

pub(crate) struct Driver {
    state: Mutex<State>,
    /// Signalled when a `settle` ticket is served.
    settled: Condvar,
    thread: Thread,
    notified: AtomicBool,
    /// Nanoseconds since `epoch` when the thread started polling jobs, 0
    /// while it is not polling: what the stall watchdog looks at.
    busy_since: AtomicU64,
    epoch: Instant,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
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
            system: BTreeMap::new(),
            manual: HashMap::new(),
            next_seq: 0,
            wake_at: None,
            new_jobs: Vec::new(),
            requested: 0,
            served: 0,
        }),
        settled: Condvar::new(),
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
            crate::observe::stalled(Duration::from_nanos(now.saturating_sub(since)));
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

    /// Registers a timer at `at` on `clock`.
    pub(crate) fn add_timer(&self, clock: &Clock, at: Instant, fire: Fire) -> TimerKey {
        let mut st = self.lock();
        st.next_seq += 1;
        let key = TimerKey(clock.id(), at, st.next_seq);
        let real = if key.0 == SYSTEM {
            st.system.insert(key, fire);
            at
        } else {
            let timers = st.manual.entry(key.0).or_insert_with(|| ClockTimers {
                clock: clock.clone(),
                timers: BTreeMap::new(),
            });
            timers.timers.insert(key, fire);
            Instant::now() + at.saturating_duration_since(clock.now())
        };
        let earlier = st.wake_at.is_none_or(|w| real < w);
        if earlier {
            st.wake_at = Some(real);
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
        let fire = st.timers_mut(key.0).and_then(|t| t.get_mut(&key));
        match fire {
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
        let mut st = self.lock();
        let Some(timers) = st.timers_mut(key.0) else {
            return false;
        };
        let removed = timers.remove(&key).is_some();
        if timers.is_empty() && key.0 != SYSTEM {
            st.manual.remove(&key.0);
        }
        removed
    }

    /// The due time of the earliest timer on `clock`.
    pub(crate) fn earliest_timer(&self, clock: &Clock) -> Option<Instant> {
        let st = self.lock();
        let timers = match clock.id() {
            SYSTEM => &st.system,
            id => &st.manual.get(&id)?.timers,
        };
        timers.first_key_value().map(|(key, _)| key.1)
    }

    /// Waits until the thread has run an iteration that began after this
    /// call: every timer due by then has fired and every job has run until
    /// it waits for something. Returns at once on the thread itself.
    pub(crate) fn settle(&self) {
        if std::thread::current().id() == self.thread.id() {
            return;
        }
        let mut st = self.lock();
        st.requested += 1;
        let ticket = st.requested;
        drop(st);
        self.notify();
        // Bounded: a thread that is blocked (a stall) must not hang the test.
        let give_up = Instant::now() + Duration::from_secs(10);
        let mut st = self.lock();
        while st.served < ticket && Instant::now() < give_up {
            st = self
                .settled
                .wait_timeout(st, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
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
        let mut serving = 0;
        loop {
            self.notified.store(false, Ordering::Release);
            {
                let mut st = self.lock();
                serving = serving.max(st.requested);
                jobs.extend(st.new_jobs.drain(..).map(guard_job));
                take_due(&mut st.system, Instant::now(), &mut due);
                for clock in st.manual.values_mut() {
                    take_due(&mut clock.timers, clock.clock.now(), &mut due);
                }
                st.manual.retain(|_, c| !c.timers.is_empty());
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
            let wake_at = {
                let mut st = self.lock();
                st.wake_at = st.next_wake();
                if st.served < serving {
                    st.served = serving;
                    self.settled.notify_all();
                }
                st.wake_at
            };
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

/// Moves the timers due by `now` into `due`, earliest first.
fn take_due(timers: &mut BTreeMap<TimerKey, Fire>, now: Instant, due: &mut Vec<Fire>) {
    while let Some(entry) = timers.first_entry() {
        if entry.key().1 > now {
            break;
        }
        due.push(entry.remove());
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
