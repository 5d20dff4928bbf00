//! Helpers every scenario family shares: option presets, loss
//! counting, holder counting, the `with_lock` work shapes, and the checks
//! many scenarios make on errors.

use std::fmt::Debug;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{join_all, select, Either, FutureExt, LocalBoxFuture};
use redsem_core::{LockError, LockGuard, LockOptions, LockOptionsBuilder, RedisBackend};

use crate::common::node::Node;
use crate::common::time::Time;
use crate::common::timing::{ms, t_builder};

/// A backend as the lock types take it.
pub type Backend = Arc<dyn RedisBackend>;

/// Sorted copies, to compare member sets regardless of score order.
pub fn sorted<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut v: Vec<String> = items.into_iter().map(|s| s.as_ref().to_owned()).collect();
    v.sort();
    v
}

/// Lowercase UUID v4, as `crypto.randomUUID()` makes them (WIRE-13).
pub fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b[14] == b'4'
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

/// `id` is a UUID v4 followed by `suffix`.
pub fn assert_uuid_with_suffix(id: &str, suffix: &str) {
    let (uuid, rest) = id.split_at(36);
    assert!(is_uuid_v4(uuid) && rest == suffix, "{id}");
}

/// A paused (SIGSTOPped / hung) node. [`Paused::resume`] thaws it; if the
/// scenario fails half-way, dropping this resumes it anyway. A single-node
/// scenario that pauses its node is a node-fault scenario: list it in
/// `NODE_FAULT_SCENARIOS` (`tests/common/cluster_node.rs`).
pub struct Paused<'a> {
    node: &'a dyn Node,
    paused: bool,
}

impl<'a> Paused<'a> {
    pub fn new(node: &'a dyn Node) -> Self {
        node.pause();
        Paused { node, paused: true }
    }

    pub fn resume(mut self) {
        self.paused = false;
        self.node.resume();
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if self.paused {
            let node = self.node;
            let _ = catch_unwind(AssertUnwindSafe(|| node.resume()));
        }
    }
}

// ---- option presets (all on the scaled preset `T`) ----

/// The preset with refresh off.
pub fn no_refresh() -> LockOptionsBuilder {
    t_builder().refresh_interval(Duration::ZERO)
}

/// The preset, waiting up to `acquire_timeout` to acquire.
pub fn waiting(acquire_timeout: Duration) -> LockOptions {
    t_builder()
        .acquire_timeout(acquire_timeout)
        .build()
        .unwrap()
}

/// The preset under the fixed identifier `id`.
pub fn fixed_identifier(id: &str) -> LockOptions {
    t_builder().identifier(id).build().unwrap()
}

/// The preset taking over the hold `id` made elsewhere
/// (`acquiredExternally`).
pub fn takeover(id: &str) -> LockOptions {
    t_builder()
        .identifier(id)
        .acquired_externally(true)
        .build()
        .unwrap()
}

/// One attempt, with an unlimited acquire timeout.
pub fn single_attempt() -> LockOptions {
    t_builder()
        .acquire_timeout(Duration::MAX)
        .max_attempts(1)
        .build()
        .unwrap()
}

/// A zero acquire timeout (which still makes one attempt).
pub fn zero_acquire_timeout() -> LockOptions {
    t_builder().acquire_timeout(Duration::ZERO).build().unwrap()
}

// ---- loss reports ----

/// Counts the reports to `on_lock_lost` that carry a `LockError::Lost` (any
/// other report fails its assertion inside the callback and is not
/// counted).
#[derive(Debug, Clone, Default)]
pub struct LossCount(Arc<AtomicUsize>);

impl LossCount {
    /// `builder` with the counting callback.
    pub fn options(&self, builder: LockOptionsBuilder) -> LockOptions {
        let count = self.0.clone();
        builder
            .on_lock_lost(move |err| {
                assert!(err.is_lost(), "{err}");
                count.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap()
    }

    /// The preset `T` with the counting callback.
    pub fn t(&self) -> LockOptions {
        self.options(t_builder())
    }

    /// The losses counted so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// `$err` (a `LockError`, borrowed) is a `LockError::Lost` whose reason
/// matches the pattern `$reason`.
macro_rules! assert_lost {
    ($err:expr, $reason:pat) => {
        match &$err {
            err => assert!(
                matches!(
                    err,
                    ::redsem_core::LockError::Lost {
                        reason: $reason,
                        ..
                    }
                ),
                "{err:?}"
            ),
        }
    };
}

pub(crate) use assert_lost;

// ---- errors ----

/// The option an `InvalidOption` error names; fails on any other error.
pub fn invalid_option(err: LockError) -> &'static str {
    match err {
        LockError::InvalidOption { option, .. } => option,
        other => panic!("expected InvalidOption, got {other:?}"),
    }
}

/// The option a constructor or builder that failed (`result`) names.
pub fn rejected<T: Debug>(result: Result<T, LockError>) -> &'static str {
    invalid_option(result.unwrap_err())
}

/// `err` is a timeout whose message starts with `prefix`
/// (`Acquire <kind> <key> timeout`).
pub fn assert_timeout(err: &LockError, prefix: &str) {
    assert!(err.is_timeout(), "{err:?}");
    assert_message(err, prefix);
}

/// `err`'s message starts with `prefix`.
pub fn assert_message(err: &LockError, prefix: &str) {
    assert!(err.to_string().starts_with(prefix), "{err}");
}

/// `acquire` (on a busy lock, with the preset's 150 ms acquire timeout)
/// times out with `prefix`, and not before the acquire timeout.
pub async fn assert_busy_timeout(
    time: &Time,
    acquire: impl Future<Output = Result<LockGuard, LockError>>,
    prefix: &str,
) {
    let start = time.now();
    let err = acquire.await.unwrap_err();
    let waited = time.since(start);
    assert_timeout(&err, prefix);
    assert!(
        waited >= ms(150),
        "gave up after {waited:?}, before the acquire timeout"
    );
}

/// `err` names the attempt limit of [`single_attempt`].
pub fn assert_attempt_limit(err: &LockError) {
    assert!(err.to_string().contains("limit of 1 attempt(s)"), "{err}");
}

/// `err` is the timeout of [`zero_acquire_timeout`]: exactly one attempt.
pub fn assert_one_attempt(err: &LockError) {
    assert!(
        matches!(err, LockError::Timeout { attempts: 1, .. }),
        "zero timeout = one attempt: {err}"
    );
}

/// The lock timeout of the default options (10 s) is the key's TTL.
pub fn assert_default_ttl(pttl: i64) {
    assert!(
        (9_000..=10_000).contains(&pttl),
        "default lock timeout 10s, PTTL {pttl}"
    );
}

// ---- waiting, holding, scoped work ----

/// Polls `acquire` for 50 ms and fails if it finishes (`what` says why it
/// must wait). The future is not polled again; the caller drops it.
pub async fn assert_still_waiting<F>(time: &Time, acquire: Pin<&mut F>, what: &str)
where
    F: Future,
    F::Output: Debug,
{
    if let Either::Left((r, _)) = select(acquire, pin!(time.sleep(ms(50)))).await {
        panic!("acquire returned while {what}: {r:?}");
    }
}

/// Runs `tasks` tasks that each acquire through `acquire` `rounds` times,
/// hold for `hold` and release; fails as soon as more than `most` hold at
/// once. Returns the most that held at once.
pub async fn count_holders<F, Fut>(
    time: &Time,
    tasks: usize,
    rounds: usize,
    hold: Duration,
    most: usize,
    acquire: F,
) -> usize
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<LockGuard, LockError>>,
{
    let inside = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let task = || async {
        for _ in 0..rounds {
            let g = acquire().await.unwrap();
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(now <= most, "{now} holders at once, at most {most} fit");
            peak.fetch_max(now, Ordering::SeqCst);
            time.sleep(hold).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            g.release().await.unwrap();
        }
    };
    join_all((0..tasks).map(|_| task())).await;
    peak.load(Ordering::SeqCst)
}

/// Runs a lock's scoped form (`with_lock`, given the work) on work that
/// reads `observe` under the lock and holds it 20 ms more; returns what the
/// work read.
pub async fn observed_under_lock<T, R, Fut>(
    time: &Time,
    observe: impl FnOnce() -> T + 'static,
    with_lock: R,
) -> T
where
    T: 'static,
    R: FnOnce(LocalBoxFuture<'static, T>) -> Fut,
    Fut: Future<Output = Result<T, LockError>>,
{
    let time = time.clone();
    let work = async move {
        let v = observe();
        time.sleep(ms(20)).await;
        v
    };
    with_lock(work.boxed_local()).await.unwrap()
}

/// Runs a lock's scoped form (`with_lock`, given the work) on work that
/// breaks the lock with `tamper` and then would take 5 s: the loss ends it
/// well before, and the work never finishes.
pub async fn assert_work_dropped_on_loss<R, Fut>(
    time: &Time,
    tamper: impl FnOnce() + 'static,
    with_lock: R,
) where
    R: FnOnce(LocalBoxFuture<'static, ()>) -> Fut,
    Fut: Future<Output = Result<(), LockError>>,
{
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let sleep = time.sleep(Duration::from_secs(5));
    let work = async move {
        tamper();
        sleep.await;
        f.fetch_add(1, Ordering::SeqCst);
    };
    let start = time.now();
    let err = with_lock(work.boxed_local()).await.unwrap_err();
    assert!(err.is_lost(), "{err}");
    assert!(
        time.since(start) < Duration::from_secs(3),
        "work was not dropped at the loss"
    );
    assert_eq!(finished.load(Ordering::SeqCst), 0);
}
