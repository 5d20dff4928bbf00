//! Issue 11: waiters are woken by a release (pub/sub from the release
//! script) instead of polling; waiters of one process share one
//! subscription per key and get the lock in FIFO order.
//!
//! Every waiter here has a retry interval of 10 s (on the mock: virtual
//! seconds, and the clock is not moved), so only a notification can hand
//! it the lock within the test's bound.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::executor::block_on;
use redsem_core::{
    Arg, BackendError, LockGuard, LockOptions, Mutex, Notifications, RedisBackend, Reply, Script,
    Semaphore,
};
use redsem_mock::MockBackend;

/// How long a test waits (real time) for something a notification causes.
const BOUND: Duration = Duration::from_secs(5);

fn slow_polling() -> LockOptions {
    LockOptions::builder()
        .retry_interval(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(600))
        .build()
        .unwrap()
}

/// Waits (bounded, real time) until `cond` holds.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let give_up = Instant::now() + BOUND;
    while !cond() {
        assert!(Instant::now() < give_up, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

fn hub(backend: &impl RedisBackend) -> Notifications {
    backend.notifications().cloned().expect("notifications")
}

/// Starts `acquire()` on its own thread; the guard arrives on the channel.
fn spawn_waiter<B: RedisBackend + Clone + 'static>(
    mutex: &Mutex<B>,
    tag: usize,
    done: mpsc::Sender<(usize, LockGuard)>,
) -> thread::JoinHandle<()> {
    let mutex = mutex.clone();
    thread::spawn(move || {
        if let Ok(guard) = block_on(mutex.acquire()) {
            let _ = done.send((tag, guard));
        }
    })
}

#[test]
fn a_release_wakes_the_waiter_at_once() {
    let redis = MockBackend::new();
    let mutex = Mutex::with_options(redis.clone(), "jobs", slow_polling()).unwrap();
    let held = block_on(mutex.acquire()).unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = spawn_waiter(&mutex, 0, tx);
    wait_until("the waiter's subscription", || {
        hub(&redis).subscriptions() == 1
    });
    block_on(held.release()).unwrap();
    let (_, guard) = rx.recv_timeout(BOUND).expect("woken by the release");
    assert!(guard.is_acquired());
    // Busy; once more when the fresh subscription is confirmed (a release
    // may have come before it); then the wake.
    assert_eq!(guard.attempts(), 3);
    waiter.join().unwrap();
}

/// The same backend with notifications hidden: the waiter can only poll.
#[derive(Debug, Clone)]
struct PollingOnly(MockBackend);

#[async_trait]
impl RedisBackend for PollingOnly {
    async fn eval_sha(&self, s: &Script, k: &[&str], a: &[Arg<'_>]) -> Result<Reply, BackendError> {
        self.0.eval_sha(s, k, a).await
    }
    async fn eval(&self, s: &Script, k: &[&str], a: &[Arg<'_>]) -> Result<Reply, BackendError> {
        self.0.eval(s, k, a).await
    }
    fn clock(&self) -> redsem_core::Clock {
        self.0.clock()
    }
}

/// Shows the test above can fail: without notifications the same waiter
/// is still waiting when the bound has passed.
#[test]
fn without_notifications_the_waiter_only_polls() {
    let redis = PollingOnly(MockBackend::new());
    let mutex = Mutex::with_options(redis.clone(), "jobs", slow_polling()).unwrap();
    let held = block_on(mutex.acquire()).unwrap();
    let (tx, rx) = mpsc::channel();
    let _waiter = spawn_waiter(&mutex, 0, tx);
    wait_until("the waiter's first attempt", || {
        redis.0.script_calls("mutex_fenced_acquire") >= 2
    });
    block_on(held.release()).unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    // Virtual time lets its next poll come (and ends the thread).
    redis.0.advance(Duration::from_secs(16));
    assert!(rx.recv_timeout(BOUND).is_ok());
}

#[test]
fn waiters_of_one_process_get_the_lock_in_order() {
    let redis = MockBackend::new();
    let mutex = Mutex::with_options(redis.clone(), "jobs", slow_polling()).unwrap();
    let held = block_on(mutex.acquire()).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    for tag in 0..5 {
        threads.push(spawn_waiter(&mutex, tag, tx.clone()));
        // Each joins the queue before the next starts.
        let calls = redis.calls();
        wait_until("the waiter to queue", || {
            hub(&redis).subscriptions() == 1 && redis.calls() > calls
        });
        thread::sleep(Duration::from_millis(20));
    }
    block_on(held.release()).unwrap();
    for expected in 0..5 {
        let (tag, guard) = rx.recv_timeout(BOUND).expect("handed on");
        assert_eq!(tag, expected, "FIFO order");
        block_on(guard.release()).unwrap();
    }
    threads.into_iter().for_each(|t| t.join().unwrap());
}

#[test]
fn a_thousand_waiters_share_one_subscription() {
    let redis = MockBackend::new();
    let options = LockOptions::builder()
        .acquire_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mutex = Mutex::with_options(redis.clone(), "jobs", options).unwrap();
    let held = block_on(mutex.acquire()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for _ in 0..1000 {
        let (mutex, tx) = (mutex.clone(), tx.clone());
        runtime.spawn(async move {
            let _ = tx.send(mutex.acquire().await);
        });
    }
    wait_until("1,000 waiters", || hub(&redis).waiters() == 1000);
    assert_eq!(hub(&redis).subscriptions(), 1);
    // A virtual 10 s of waiting: the head polls about every 50 ms, the
    // others about every 10 s; far fewer calls than 1,000 pollers at 10 ms.
    let before = redis.calls();
    for _ in 0..100 {
        redis.advance(Duration::from_millis(100));
    }
    let polls = redis.calls() - before;
    eprintln!("{polls} calls in a virtual 10 s with 1,000 waiters");
    assert!(
        polls < 2_000,
        "{polls} calls in 10 s (pollers would make ~1,000,000)"
    );
    drop(held);
    redis.advance(Duration::from_secs(31));
    // Guards are kept (received), so the one who got it keeps it.
    let results: Vec<_> = (0..1000).map(|_| rx.recv_timeout(BOUND).unwrap()).collect();
    let got = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        got, 1,
        "one waiter got the released lock, the rest timed out"
    );
}

#[test]
fn an_unannounced_expiry_is_found_by_the_heads_poll() {
    let redis = MockBackend::new();
    // The acquire timeout must not end with the hold (10 s on a clock that
    // stands still in between): the waiter's last attempt would race the
    // expiry at the same virtual instant.
    let options = LockOptions::builder()
        .acquire_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mutex = Mutex::with_options(redis.clone(), "jobs", options).unwrap();
    let held = block_on(mutex.acquire()).unwrap();
    held.stop_refresh();
    let (tx, rx) = mpsc::channel();
    let _waiter = spawn_waiter(&mutex, 0, tx);
    wait_until("the waiter's subscription", || {
        hub(&redis).subscriptions() == 1
    });
    // The hold expires without a release; the head polls within 5 x 1.5 x
    // retry_interval (75 ms) after that.
    redis.advance(Duration::from_secs(10));
    redis.advance(Duration::from_millis(80));
    let (_, guard) = rx.recv_timeout(BOUND).expect("found by polling");
    assert!(guard.is_acquired());
}

#[test]
fn a_semaphore_release_wakes_a_waiter() {
    let redis = MockBackend::new();
    let semaphore = Semaphore::with_options(redis.clone(), "pool", 2, slow_polling()).unwrap();
    let a = block_on(semaphore.acquire()).unwrap();
    let _b = block_on(semaphore.acquire()).unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let semaphore = semaphore.clone();
        thread::spawn(move || {
            let _ = tx.send(block_on(semaphore.acquire()).map(|g| g.is_acquired()));
        })
    };
    wait_until("the waiter's subscription", || {
        hub(&redis).subscriptions() == 1
    });
    block_on(a.release()).unwrap();
    assert!(rx.recv_timeout(BOUND).expect("woken").unwrap());
    waiter.join().unwrap();
}

/// On real Redis, through both adapters' `connect`.
mod real {
    use super::*;
    use redsem_fred::FredBackend;
    use redsem_redis::RedisRsBackend;
    use redsem_testing::RedisServer;

    async fn woken_on<B: RedisBackend + Clone + 'static>(backend: B) {
        let mutex = Mutex::with_options(backend.clone(), "jobs", slow_polling()).unwrap();
        let held = mutex.acquire().await.unwrap();
        let waiter = tokio::spawn({
            let mutex = mutex.clone();
            async move { mutex.acquire().await.map(|g| g.attempts()) }
        });
        let give_up = Instant::now() + BOUND;
        while hub(&backend).subscriptions() == 0 {
            assert!(Instant::now() < give_up, "no subscription");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        held.release().await.unwrap();
        let attempts = tokio::time::timeout(BOUND, waiter)
            .await
            .expect("woken by the release, not after 10 s of polling")
            .unwrap()
            .unwrap();
        // Busy; once more when the subscription is confirmed; then the wake.
        // The release may land before that second attempt, which then gets
        // the lock: 2. Never more than 3 (no polling within the bound).
        assert!(
            (2..=3).contains(&attempts),
            "{attempts} attempts: busy, after subscribing, after the wake"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_rs() {
        let server = RedisServer::start().unwrap();
        woken_on(RedisRsBackend::connect(&server.url()).await.unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fred() {
        let server = RedisServer::start().unwrap();
        woken_on(FredBackend::connect(&server.url()).await.unwrap()).await;
    }

    /// A waiter in another process (another connection) is woken too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn across_clients() {
        let server = RedisServer::start().unwrap();
        let holder = RedisRsBackend::connect(&server.url()).await.unwrap();
        let mutex = Mutex::new(holder, "jobs").unwrap();
        let held = mutex.acquire().await.unwrap();
        let other = FredBackend::connect(&server.url()).await.unwrap();
        let theirs = Mutex::with_options(other.clone(), "jobs", slow_polling()).unwrap();
        let waiter = tokio::spawn(async move { theirs.acquire().await.map(drop) });
        let give_up = Instant::now() + BOUND;
        while hub(&other).subscriptions() == 0 {
            assert!(Instant::now() < give_up, "no subscription");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        held.release().await.unwrap();
        tokio::time::timeout(BOUND, waiter)
            .await
            .expect("woken")
            .unwrap()
            .unwrap();
    }
}

/// A backend that counts the calls of the locks on it (one per waiter).
#[derive(Debug, Clone)]
struct Counted(MockBackend, Arc<AtomicUsize>);

#[async_trait]
impl RedisBackend for Counted {
    async fn eval_sha(&self, s: &Script, k: &[&str], a: &[Arg<'_>]) -> Result<Reply, BackendError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.eval_sha(s, k, a).await
    }
    async fn eval(&self, s: &Script, k: &[&str], a: &[Arg<'_>]) -> Result<Reply, BackendError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.eval(s, k, a).await
    }
    fn clock(&self) -> redsem_core::Clock {
        self.0.clock()
    }
    fn notifications(&self) -> Option<&Notifications> {
        self.0.notifications()
    }
}

/// Behind a head that keeps polling, the other waiters do not poll Redis
/// (they used to, every 5-15 s each), not even for a last attempt when
/// they time out: 1,000 waiters on a held lock cost the head's polls
/// alone. Each waiter has a backend of its own that counts its calls; a
/// virtual minute passes in steps, each ending once the head has polled.
#[test]
fn behind_a_polling_head_the_others_stay_off_redis() {
    let redis = MockBackend::new();
    let options = LockOptions::builder()
        .acquire_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let _held = block_on(Mutex::new(redis.clone(), "jobs").unwrap().acquire()).unwrap();
    let counters: Vec<Arc<AtomicUsize>> = (0..20).map(|_| Arc::default()).collect();
    let head_done = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    for (i, calls) in counters.iter().enumerate() {
        let backend = Counted(redis.clone(), calls.clone());
        let mutex = Mutex::with_options(backend, "jobs", options.clone()).unwrap();
        let (tx, head_done) = (tx.clone(), head_done.clone());
        thread::spawn(move || {
            let outcome = block_on(mutex.acquire()).map(drop);
            if i == 0 {
                head_done.store(1, Ordering::SeqCst);
            }
            tx.send(outcome)
        });
        wait_until("the waiter to queue", || hub(&redis).waiters() == i + 1);
    }
    let calls = |i: usize| counters[i].load(Ordering::SeqCst);
    let queued: Vec<usize> = (0..20).map(calls).collect();
    // Steps of 100 ms of virtual time, each ending once the head has
    // polled, until the head times out; the clock then stands still while
    // the others, due at the same instant, give up.
    while head_done.load(Ordering::SeqCst) == 0 {
        let head = calls(0);
        redis.advance(Duration::from_millis(100));
        // The head polls every 25-75 ms: at least once per step.
        wait_until("the head's poll", || {
            calls(0) > head || head_done.load(Ordering::SeqCst) == 1
        });
    }
    for _ in 0..20 {
        let outcome = rx.recv_timeout(BOUND).expect("the waiter gave up");
        assert!(outcome.is_err_and(|e| e.is_timeout()));
    }
    let polled: Vec<usize> = (1..20).filter(|&i| calls(i) != queued[i]).collect();
    assert!(
        polled.is_empty(),
        "waiters {polled:?} called Redis behind a live head"
    );
}

/// A head whose task no longer runs (its acquire future kept, not polled)
/// makes no attempts: the waiter behind it polls Redis and gets the lock
/// within the queue's fallback (at most 1.5 x 10 s).
#[test]
fn behind_a_stuck_head_the_next_waiter_still_gets_the_lock() {
    let redis = MockBackend::new();
    let mutex = Mutex::with_options(redis.clone(), "jobs", LockOptions::default()).unwrap();
    let held = block_on(mutex.acquire()).unwrap();
    let mut stuck = Box::pin(mutex.acquire());
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(stuck.as_mut().poll(&mut cx).is_pending());
    wait_until("the stuck head to queue", || hub(&redis).waiters() == 1);
    let (tx, rx) = mpsc::channel();
    let _waiter = spawn_waiter(&mutex, 1, tx);
    wait_until("the second waiter to queue", || hub(&redis).waiters() == 2);
    block_on(held.release()).unwrap();
    for _ in 0..160 {
        redis.advance(Duration::from_millis(100));
    }
    let (_, guard) = rx.recv_timeout(BOUND).expect("the waiter behind got it");
    assert!(guard.is_acquired());
    drop(stuck);
}

/// Redlock waiters are woken too: they listen on the first node, and every
/// release publishes on each node.
#[test]
fn a_redlock_release_wakes_the_waiter() {
    use redsem_core::RedlockMutex;
    let nodes = vec![MockBackend::new(), MockBackend::new(), MockBackend::new()];
    let mutex = RedlockMutex::with_options(nodes.clone(), "jobs", slow_polling()).unwrap();
    let held = block_on(mutex.acquire()).unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let mutex = mutex.clone();
        thread::spawn(move || {
            let _ = tx.send(block_on(mutex.acquire()).map(|g| g.attempts()));
        })
    };
    wait_until("the waiter's subscription", || {
        hub(&nodes[0]).subscriptions() == 1
    });
    block_on(held.release()).unwrap();
    let attempts = rx.recv_timeout(BOUND).expect("woken by the release");
    assert!(attempts.unwrap() <= 3, "woken, not polling every 10 s");
    waiter.join().unwrap();
}
