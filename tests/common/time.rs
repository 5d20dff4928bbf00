//! How a scenario lets time pass, so one scenario runs on real servers and,
//! much faster, on the mock's virtual clock.
//!
//! [`Time::Real`] sleeps for real. [`Time::Virtual`] is the manual clock
//! that every mock node of the scenario shares: [`Time::block_on`] runs the
//! scenario and, whenever it waits with nothing left to do, moves that
//! clock forward one millisecond at a time. Each step fires the redsem
//! timers that fall due (retries, refresh ticks, call bounds, timeouts),
//! lets redsem's background work settle and wakes the scenario's own
//! sleeps, then polls the scenario again; so a task waiting on an acquire
//! makes progress while another "holds for 300 ms", in the same order as in
//! real time, and the hold costs no wall time. When only the scenario's own
//! sleeps can wake it, the clock jumps to the earliest one.

use std::collections::HashMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use redsem_core::Clock;

use super::timing::ms;

/// One step of virtual time: the resolution of a scenario's timing on the
/// mock, well under the 10 ms retry interval of the presets.
const STEP: Duration = ms(1);

/// A scenario still waiting after this much virtual time is stuck.
const VIRTUAL_LIMIT: Duration = Duration::from_secs(600);

/// ... or after this much wall time (a future that keeps waking itself).
const WALL_LIMIT: Duration = Duration::from_secs(120);

/// How often [`Time::wait_until`] checks its condition.
const POLL: Duration = ms(5);

/// A scenario's time: real, or the mock nodes' shared virtual clock.
#[derive(Clone)]
pub enum Time {
    Real,
    Virtual(Arc<Virtual>),
}

/// A manual clock and the scenario's sleeps on it.
pub struct Virtual {
    clock: Clock,
    /// Pending [`Time::sleep`]s by id: due time on `clock`, and whom to
    /// wake.
    sleepers: Mutex<HashMap<u64, (Instant, Waker)>>,
    next_id: AtomicU64,
}

impl Time {
    /// Virtual time on `clock` (a manual clock the mock nodes share).
    pub fn virtual_on(clock: Clock) -> Time {
        assert!(clock.is_manual(), "virtual time needs a manual clock");
        Time::Virtual(Arc::new(Virtual {
            clock,
            sleepers: Mutex::default(),
            next_id: AtomicU64::new(0),
        }))
    }

    /// The current time: real, or on the virtual clock.
    pub fn now(&self) -> Instant {
        match self {
            Time::Real => Instant::now(),
            Time::Virtual(v) => v.clock.now(),
        }
    }

    /// The time passed since `start` (a [`Time::now`]).
    pub fn since(&self, start: Instant) -> Duration {
        self.now().saturating_duration_since(start)
    }

    /// Lets `d` pass: sleeps, or waits until the virtual clock has moved
    /// `d` on (under [`Time::block_on`], which moves it).
    pub fn sleep(&self, d: Duration) -> impl Future<Output = ()> + 'static {
        let time = self.clone();
        async move {
            match &time {
                Time::Real => super::timing::sleep(d).await,
                Time::Virtual(v) => {
                    let due = v.clock.now() + d;
                    let id = v.next_id.fetch_add(1, Ordering::Relaxed);
                    std::future::poll_fn(|cx| v.poll_sleep(id, due, cx)).await;
                }
            }
        }
    }

    /// Polls `cond` every few milliseconds; fails the scenario, naming
    /// `what`, if it is still false after `limit`.
    pub async fn wait_until(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = self.now() + limit;
        while !cond() {
            assert!(self.now() < deadline, "{what}: not within {limit:?}");
            self.sleep(POLL).await;
        }
    }

    /// Runs a scenario to completion on this thread. In virtual time the
    /// clock moves on only while the scenario waits, in [`STEP`]s; in real
    /// time this is a plain `block_on`.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        match self {
            Time::Real => futures::executor::block_on(fut),
            Time::Virtual(v) => v.block_on(fut),
        }
    }
}

impl Virtual {
    fn poll_sleep(&self, id: u64, due: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let mut sleepers = self.sleepers.lock().unwrap();
        if self.clock.now() >= due {
            sleepers.remove(&id);
            return Poll::Ready(());
        }
        sleepers.insert(id, (due, cx.waker().clone()));
        Poll::Pending
    }

    /// Wakes the sleeps that are due.
    fn wake_due(&self) {
        let now = self.clock.now();
        let due: Vec<Waker> = {
            let mut sleepers = self.sleepers.lock().unwrap();
            let due: Vec<u64> = sleepers
                .iter()
                .filter(|(_, (at, _))| *at <= now)
                .map(|(id, _)| *id)
                .collect();
            due.iter()
                .filter_map(|id| sleepers.remove(id))
                .map(|(_, w)| w)
                .collect()
        };
        due.into_iter().for_each(Waker::wake);
    }

    /// When only the scenario's own sleeps hold its waker (no acquire, call
    /// or loss report is waiting on a redsem timer or background work),
    /// nothing but the earliest of them can wake it: its due time, to jump
    /// to in one `advance` (which still fires redsem's background timers in
    /// order on the way).
    fn next_sleep_alone(&self, woken: &Arc<Woken>, waker: &Waker) -> Option<Instant> {
        // Read the count before the sleeps: a wake sets the flag before it
        // drops its clone, and the caller checks the flag after this.
        let holders = Arc::strong_count(woken);
        let sleepers = self.sleepers.lock().unwrap();
        let ours = sleepers
            .values()
            .filter(|(_, w)| w.will_wake(waker))
            .count();
        // `woken` and `waker` are the executor's own two references.
        (holders == 2 + ours)
            .then(|| sleepers.values().map(|(at, _)| *at).min())
            .flatten()
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        let woken = Arc::new(Woken(AtomicBool::new(true)));
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut: Pin<&mut F> = pin!(fut);
        let virtual_limit = self.clock.advanced() + VIRTUAL_LIMIT;
        let wall_limit = Instant::now() + WALL_LIMIT;
        loop {
            woken.0.store(false, Ordering::SeqCst);
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            if woken.0.load(Ordering::SeqCst) {
                continue; // woken while it ran: poll again before time moves
            }
            assert!(
                self.clock.advanced() < virtual_limit && Instant::now() < wall_limit,
                "the scenario is stuck: still waiting after {VIRTUAL_LIMIT:?} of virtual time \
                 or {WALL_LIMIT:?} of wall time"
            );
            let step = self
                .next_sleep_alone(&woken, &waker)
                .map_or(STEP, |due| due.saturating_duration_since(self.clock.now()));
            if woken.0.load(Ordering::SeqCst) {
                continue;
            }
            self.clock.advance(step);
            self.wake_due();
        }
    }
}

/// Records that the scenario was woken.
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}
