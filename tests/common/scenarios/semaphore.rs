//! Semaphore behaviours (redis-semaphore SEM-*, WIRE-04..06/14, LOCK-*,
//! GAP-*) plus redsem's own guarantees. Helpers shared with the
//! multi-semaphore scenarios live here too.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{join_all, select, Either};
use redsem_core::{
    LockError, LockGuard, LockKind, LockOptions, LockOptionsBuilder, LostReason, MultiSemaphore,
    RedisBackend, Semaphore,
};

use crate::common::node::Node;
use crate::common::timing::{ms, sleep, t, t_builder, OUTLIVE};
use crate::common::Env;

/// The stored key of the user key `key`.
pub(crate) const KEY: &str = "semaphore:key";

/// A generous bound for conditions that should hold within a lock timeout
/// or two.
pub(crate) const PATIENCE: Duration = Duration::from_secs(3);

/// Polls `cond` every few milliseconds; fails after `limit`.
pub(crate) async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        sleep(ms(5)).await;
    }
}

/// Sorted copies, to compare member sets regardless of score order.
pub(crate) fn sorted<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut v: Vec<String> = items.into_iter().map(|s| s.as_ref().to_owned()).collect();
    v.sort();
    v
}

/// The score of `member` in [`KEY`], if present.
pub(crate) fn score_of(node: &dyn Node, member: &str) -> Option<i64> {
    node.zrange_with_scores(KEY)
        .into_iter()
        .find(|(m, _)| m == member)
        .map(|(_, s)| s)
}

/// Lowercase UUID v4, as `crypto.randomUUID()` makes them (WIRE-13).
pub(crate) fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b[14] == b'4'
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

/// `builder` plus an `on_lock_lost` callback counting calls that carry a
/// `LockError::Lost`.
pub(crate) fn counting(builder: LockOptionsBuilder, count: &Arc<AtomicUsize>) -> LockOptions {
    let count = count.clone();
    builder
        .on_lock_lost(move |err| {
            assert!(err.is_lost(), "{err}");
            count.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap()
}

/// The preset with refresh off.
pub(crate) fn no_refresh() -> LockOptionsBuilder {
    t_builder().refresh_interval(Duration::ZERO)
}

pub(crate) type Backend = Arc<dyn RedisBackend>;

fn sem(env: &Env, limit: u32) -> Semaphore<Backend> {
    Semaphore::with_options(env.backend(), "key", limit, t()).unwrap()
}

/// A Semaphore (`permits` 0) or a MultiSemaphore on `key`, for scenarios
/// both kinds share.
#[derive(Clone)]
pub(crate) enum AnySem {
    Sem(Semaphore<Backend>),
    Multi(MultiSemaphore<Backend>),
}

impl AnySem {
    pub(crate) fn new(env: &Env, limit: u32, permits: u32, options: LockOptions) -> Self {
        if permits == 0 {
            AnySem::Sem(Semaphore::with_options(env.backend(), "key", limit, options).unwrap())
        } else {
            AnySem::Multi(
                MultiSemaphore::with_options(env.backend(), "key", limit, permits, options)
                    .unwrap(),
            )
        }
    }

    pub(crate) async fn acquire(&self) -> Result<LockGuard, LockError> {
        match self {
            AnySem::Sem(s) => s.acquire().await,
            AnySem::Multi(s) => s.acquire().await,
        }
    }

    pub(crate) async fn try_acquire(&self) -> Result<Option<LockGuard>, LockError> {
        match self {
            AnySem::Sem(s) => s.try_acquire().await,
            AnySem::Multi(s) => s.try_acquire().await,
        }
    }

    /// The ZSET members a hold under `id` has.
    pub(crate) fn members(&self, id: &str) -> Vec<String> {
        match self {
            AnySem::Sem(_) => vec![id.to_owned()],
            AnySem::Multi(s) => (0..s.permits()).map(|i| format!("{id}_{i}")).collect(),
        }
    }

    /// The kind's name in messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            AnySem::Sem(_) => "semaphore",
            AnySem::Multi(_) => "multi-semaphore",
        }
    }
}

/// SEM-02, SEM-15, WIRE-04/06: each holder is one member of the ZSET; an
/// empty ZSET is deleted.
pub async fn acquire_release(env: Env) {
    let node = env.node();
    let s1 = Semaphore::new(env.backend(), "key", 2).unwrap();
    let s2 = Semaphore::new(env.backend(), "key", 2).unwrap();
    assert_eq!(s1.key(), KEY);
    assert_eq!(s1.limit(), 2);
    let g1 = s1.acquire().await.unwrap();
    let g2 = s2.acquire().await.unwrap();
    assert!(g1.is_acquired() && g2.is_acquired());
    assert_eq!(g1.kind(), LockKind::Semaphore);
    assert_eq!(g1.key(), KEY);
    let (id1, id2) = (g1.identifier().to_owned(), g2.identifier().to_owned());
    assert_ne!(id1, id2);
    assert_eq!(sorted(node.zrange(KEY)), sorted([&id1, &id2]));
    let pttl = node.pttl(KEY);
    assert!(
        (9_000..=10_000).contains(&pttl),
        "default lock timeout 10s, PTTL {pttl}"
    );
    g1.release().await.unwrap();
    assert_eq!(node.zrange(KEY), [id2]);
    g2.release().await.unwrap();
    assert!(node.zrange(KEY).is_empty());
    assert_eq!(node.pttl(KEY), -2, "an empty ZSET is deleted");
}

/// WIRE-13, LOCK-03: a fresh UUID v4 per acquisition, the suffix, the fixed
/// identifier.
pub async fn identifiers(env: Env) {
    let s = Semaphore::new(env.backend(), "key", 3).unwrap();
    assert_eq!(s.identifier(), None);
    let g = s.acquire().await.unwrap();
    assert!(is_uuid_v4(g.identifier()), "{}", g.identifier());
    assert_eq!(env.node().zrange(KEY), [g.identifier()]);
    g.release().await.unwrap();

    let options = LockOptions::builder()
        .identifier_suffix("abc")
        .build()
        .unwrap();
    let s = Semaphore::with_options(env.backend(), "key", 3, options).unwrap();
    let g = s.acquire().await.unwrap();
    let (uuid, suffix) = g.identifier().split_at(36);
    assert!(is_uuid_v4(uuid) && suffix == "-abc", "{}", g.identifier());
    assert_eq!(env.node().zrange(KEY), [g.identifier()]);
    g.release().await.unwrap();

    let options = LockOptions::builder().identifier("abc").build().unwrap();
    let s = Semaphore::with_options(env.backend(), "key", 3, options).unwrap();
    assert_eq!(s.identifier(), Some("abc"));
    let g = s.acquire().await.unwrap();
    assert_eq!(g.identifier(), "abc");
    assert_eq!(env.node().zrange(KEY), ["abc"]);
    g.release().await.unwrap();
    assert!(env.node().zrange(KEY).is_empty());
}

/// SEM-01, GAP-02/03: bad arguments are build-time errors naming the
/// argument, and nothing reaches Redis.
pub async fn invalid_arguments(env: Env) {
    let err = Semaphore::new(env.backend(), "", 1).unwrap_err();
    assert!(
        matches!(err, LockError::InvalidOption { option: "key", .. }),
        "{err}"
    );
    let err = Semaphore::new(env.backend(), "key", 0).unwrap_err();
    assert!(
        matches!(
            err,
            LockError::InvalidOption {
                option: "limit",
                ..
            }
        ),
        "{err}"
    );
    // GAP-02: a zero lock timeout would make PEXPIRE delete the key.
    let err = LockOptions::builder()
        .lock_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            LockError::InvalidOption {
                option: "lock_timeout",
                ..
            }
        ),
        "{err}"
    );
    // GAP-03: a refresh interval at or above the lock timeout comes too late.
    let err = LockOptions::builder()
        .lock_timeout(ms(100))
        .refresh_interval(ms(100))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            LockError::InvalidOption {
                option: "refresh_interval",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(env.node().pttl(KEY), -2);
}

/// SEM-03, LOCK-05: a full semaphore times out with the kind and key in
/// the message; the key is gone after release.
pub async fn acquire_times_out_when_busy(env: Env) {
    let g1 = sem(&env, 1).acquire().await.unwrap();
    let start = Instant::now();
    let err = sem(&env, 1).acquire().await.unwrap_err();
    let waited = start.elapsed();
    assert!(err.is_timeout(), "{err}");
    assert!(
        err.to_string()
            .starts_with("Acquire semaphore semaphore:key timeout"),
        "{err}"
    );
    assert!(
        waited >= ms(150),
        "gave up after {waited:?}, before the acquire timeout"
    );
    assert_eq!(
        env.node().zrange(KEY),
        [g1.identifier()],
        "the loser left nothing behind"
    );
    g1.release().await.unwrap();
    assert_eq!(env.node().pttl(KEY), -2);
}

/// SEM-04: cancelling a waiting acquire is dropping its future; nothing of
/// the waiter stays behind.
pub async fn dropping_a_waiting_acquire_cancels_it(env: Env) {
    let g1 = sem(&env, 1).acquire().await.unwrap();
    let options = t_builder()
        .acquire_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let waiter = Semaphore::with_options(env.backend(), "key", 1, options).unwrap();
    let start = Instant::now();
    let acquire = std::pin::pin!(waiter.acquire());
    match select(acquire, std::pin::pin!(sleep(ms(50)))).await {
        Either::Left((r, _)) => panic!("acquire returned while the semaphore was full: {r:?}"),
        Either::Right(_) => {}
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(env.node().zrange(KEY), [g1.identifier()]);
    g1.release().await.unwrap();
    sleep(ms(100)).await;
    assert_eq!(
        env.node().pttl(KEY),
        -2,
        "the cancelled waiter must not take a slot later"
    );
}

/// SEM-16/17, redsem: `try_acquire` is one attempt; one instance without a
/// fixed identifier takes a new slot (a new member) per acquisition.
pub async fn try_acquire(env: Env) {
    let s = sem(&env, 2);
    let g1 = s.try_acquire().await.unwrap().expect("free slot");
    let g2 = s.try_acquire().await.unwrap().expect("second slot");
    assert_ne!(
        g1.identifier(),
        g2.identifier(),
        "each acquisition is its own member"
    );
    assert_eq!(
        sorted(env.node().zrange(KEY)),
        sorted([g1.identifier(), g2.identifier()])
    );
    let start = Instant::now();
    assert!(s.try_acquire().await.unwrap().is_none());
    assert!(sem(&env, 2).try_acquire().await.unwrap().is_none());
    assert!(
        start.elapsed() < ms(140),
        "try_acquire must not wait for the acquire timeout"
    );
    assert_eq!(env.node().zrange(KEY).len(), 2);
    g1.release().await.unwrap();
    assert_eq!(env.node().zrange(KEY), [g2.identifier()]);
    g2.release().await.unwrap();
    assert_eq!(env.node().pttl(KEY), -2);
}

/// SEM-05: refresh keeps every holder past the lock timeout.
pub async fn refresh_keeps_the_holders(env: Env) {
    let g1 = sem(&env, 2).acquire().await.unwrap();
    let g2 = sem(&env, 2).acquire().await.unwrap();
    sleep(OUTLIVE).await;
    assert_eq!(
        sorted(env.node().zrange(KEY)),
        sorted([g1.identifier(), g2.identifier()])
    );
    assert!(g1.is_acquired() && g2.is_acquired());
    let id2 = g2.identifier().to_owned();
    g1.release().await.unwrap();
    assert_eq!(env.node().zrange(KEY), [id2]);
    g2.release().await.unwrap();
    assert_eq!(env.node().pttl(KEY), -2);
}

/// SEM-06, GAP-20: after stop_refresh a holder is pruned by the others'
/// refresh (not early), the guard reports `Expired`; the last one goes
/// with the key's TTL.
pub async fn stop_refresh_lets_it_expire(env: Env) {
    let node = env.node();
    let g1 = sem(&env, 2).acquire().await.unwrap();
    let g2 = sem(&env, 2).acquire().await.unwrap();
    let id2 = g2.identifier().to_owned();
    g1.stop_refresh();
    let stopped = Instant::now();
    assert!(g1.is_acquired(), "still held until its lock timeout");
    wait_for("s1 pruned by s2's refresh", PATIENCE, || {
        node.zrange(KEY) == [id2.as_str()]
    })
    .await;
    assert!(
        stopped.elapsed() >= ms(300),
        "pruned {:?} after stop_refresh",
        stopped.elapsed()
    );
    let lost = g1.lost().await;
    assert!(
        matches!(
            lost,
            LockError::Lost {
                reason: LostReason::Expired,
                ..
            }
        ),
        "{lost}"
    );
    assert!(!g1.is_acquired());
    assert!(g2.is_acquired());

    g2.stop_refresh();
    wait_for("the key to expire", PATIENCE, || node.pttl(KEY) == -2).await;
    let lost = g2.lost().await;
    assert!(
        matches!(
            lost,
            LockError::Lost {
                reason: LostReason::Expired,
                ..
            }
        ),
        "{lost}"
    );
    assert!(g1.release().await.unwrap_err().is_lost());
    assert!(g2.release().await.unwrap_err().is_lost());
}

/// SEM-07, MSEM-07: a batch of `limit` waiters gets in only once the first
/// batch's members expired by score; the limit is never exceeded.
pub(crate) async fn fairness_batches_with(env: Env, permits: u32) {
    const LOCK_MS: i64 = 200;
    let node = env.node();
    let options = || {
        t_builder()
            .lock_timeout(ms(LOCK_MS as u64))
            .refresh_interval(Duration::ZERO)
            .acquire_timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let batch = || {
        (0..3)
            .map(|_| AnySem::new(&env, 3, permits, options()))
            .collect::<Vec<_>>()
    };
    let (locks1, locks2) = (batch(), batch());
    let members = |locks: &[AnySem], guards: &[LockGuard]| {
        sorted(
            locks
                .iter()
                .zip(guards)
                .flat_map(|(l, g)| l.members(g.identifier())),
        )
    };

    let batch1: Vec<LockGuard> = join_all(locks1.iter().map(AnySem::acquire))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids1 = members(&locks1, &batch1);
    let scores1 = node.zrange_with_scores(KEY);
    assert_eq!(
        sorted(scores1.iter().map(|(m, _)| m)),
        ids1,
        "ZCARD 3, batch 1's members"
    );
    let oldest1 = scores1.iter().map(|(_, s)| *s).min().unwrap();
    let newest1 = scores1.iter().map(|(_, s)| *s).max().unwrap();

    let done = AtomicBool::new(false);
    let max_seen = AtomicUsize::new(0);
    let watch = async {
        while !done.load(Ordering::SeqCst) {
            max_seen.fetch_max(node.zrange(KEY).len(), Ordering::SeqCst);
            sleep(ms(5)).await;
        }
    };
    let waiters = async {
        let b = join_all(locks2.iter().map(AnySem::acquire)).await;
        done.store(true, Ordering::SeqCst);
        b
    };
    let (batch2, ()) = futures::join!(waiters, watch);
    let batch2: Vec<LockGuard> = batch2.into_iter().map(Result::unwrap).collect();
    assert!(
        max_seen.load(Ordering::SeqCst) <= 3,
        "ZCARD went above the limit"
    );

    let ids2 = members(&locks2, &batch2);
    let scores2 = node.zrange_with_scores(KEY);
    assert_eq!(
        sorted(scores2.iter().map(|(m, _)| m)),
        ids2,
        "ZCARD 3, batch 2's members only"
    );
    assert!(ids1.iter().all(|id| !ids2.contains(id)));
    // On the server's clock: nobody of batch 2 got in before a member of
    // batch 1 had expired, and the last only once all of them had.
    for (m, s) in &scores2 {
        assert!(
            *s >= oldest1 + LOCK_MS - 2,
            "{m} got in at {s}, batch 1 from {oldest1}"
        );
    }
    let newest2 = scores2.iter().map(|(_, s)| *s).max().unwrap();
    assert!(
        newest2 >= newest1 + LOCK_MS - 2,
        "batch 2 full at {newest2}, batch 1 until {newest1}"
    );

    for g in batch1 {
        assert!(
            g.release().await.unwrap_err().is_lost(),
            "batch 1 had expired"
        );
    }
    for g in batch2 {
        // It may have expired meanwhile on a slow machine; either way its
        // members are removed.
        let _ = g.release().await;
    }
    assert!(node.zrange(KEY).is_empty());
}

/// SEM-07.
pub async fn fairness_batches(env: Env) {
    fairness_batches_with(env, 0).await;
}

/// SEM-08/09, MSEM-08/09: a hold made elsewhere (here: detached) is taken
/// over with one refresh and kept alive under the same members; the flag is
/// spent afterwards.
pub(crate) async fn acquired_externally_with(env: Env, limit: u32, permits: u32) {
    let ext = AnySem::new(&env, limit, permits, no_refresh().build().unwrap());
    let id = ext.acquire().await.unwrap().detach();
    let expected = ext.members(&id);

    let options = t_builder()
        .identifier(&id)
        .acquired_externally(true)
        .build()
        .unwrap();
    let local = AnySem::new(&env, limit, permits, options);
    let g = local.acquire().await.unwrap();
    assert_eq!(g.identifier(), id);
    sleep(OUTLIVE).await;
    assert_eq!(
        env.node().zrange(KEY),
        expected,
        "the same members, kept alive by local"
    );
    assert!(g.is_acquired());
    g.release().await.unwrap();
    assert_eq!(env.node().pttl(KEY), -2);

    let g = local.acquire().await.unwrap();
    assert_eq!(
        env.node().zrange(KEY),
        expected,
        "a normal acquire under the fixed identifier"
    );
    g.release().await.unwrap();
    assert!(env.node().zrange(KEY).is_empty());
}

/// SEM-08/09.
pub async fn acquired_externally(env: Env) {
    acquired_externally_with(env, 3, 0).await;
}

/// Taking over a hold that is gone fails after one attempt.
pub async fn acquired_externally_but_gone(env: Env) {
    let options = t_builder()
        .identifier("nobody")
        .acquired_externally(true)
        .build()
        .unwrap();
    let local = Semaphore::with_options(env.backend(), "key", 3, options).unwrap();
    assert!(local.try_acquire().await.unwrap().is_none());
    let err = local.acquire().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(
        err.to_string()
            .starts_with("Acquire semaphore semaphore:key timeout"),
        "{err}"
    );
    assert_eq!(
        env.node().pttl(KEY),
        -2,
        "a failed takeover does not create the member"
    );
}

/// Acquires under a loss-counting callback, runs `tamper` with the
/// identifier, and checks the loss is reported exactly once with `Gone`,
/// and that release reports it too.
pub(crate) async fn lost_after<F>(env: &Env, limit: u32, permits: u32, tamper: F)
where
    F: FnOnce(&Env, &str),
{
    let lost = Arc::new(AtomicUsize::new(0));
    let lock = AnySem::new(env, limit, permits, counting(t_builder(), &lost));
    let guard = lock.acquire().await.unwrap();
    tamper(env, guard.identifier());
    wait_for("the loss callback", PATIENCE, || {
        lost.load(Ordering::SeqCst) > 0
    })
    .await;
    assert!(!guard.is_acquired());
    let err = guard.lost().await;
    assert!(
        matches!(
            err,
            LockError::Lost {
                reason: LostReason::Gone,
                ..
            }
        ),
        "{err}"
    );
    let prefix = format!("Lost {} for key semaphore:key", lock.kind());
    assert!(err.to_string().starts_with(&prefix), "{err}");
    sleep(ms(250)).await;
    assert_eq!(
        lost.load(Ordering::SeqCst),
        1,
        "the loss is reported exactly once"
    );
    assert!(!guard.is_acquired());
    let err = guard.release().await.unwrap_err();
    assert!(err.is_lost(), "release reports the loss too: {err}");
}

/// Deletes the key and fills it with `members` scored at the server's now.
pub(crate) fn refill(env: &Env, members: &[&str]) {
    env.node().del(KEY);
    let now = env.node().now_ms();
    for m in members {
        env.node().zadd(KEY, now, m);
    }
}

/// SEM-10/11: the key is deleted and refilled by others: the loss is
/// reported once; the others' members are untouched.
pub async fn lost_when_refilled(env: Env) {
    lost_after(&env, 3, 0, |env, _| refill(env, &["aaa", "bbb", "ccc"])).await;
    assert_eq!(sorted(env.node().zrange(KEY)), ["aaa", "bbb", "ccc"]);
}

/// SEM-10 (simulated expiry): the key vanished; refresh does not re-create
/// it.
pub async fn lost_when_deleted(env: Env) {
    lost_after(&env, 3, 0, |env, _| env.node().del(KEY)).await;
    assert_eq!(env.node().pttl(KEY), -2);
}

/// SEM-23/24: a refresh that finds the hold gone changes no other member,
/// but still prunes expired ones.
pub async fn failed_refresh_still_prunes(env: Env) {
    lost_after(&env, 3, 0, |env, _| {
        env.node().del(KEY);
        let now = env.node().now_ms();
        env.node().zadd(KEY, now - 10_000, "old");
        env.node().zadd(KEY, now - 10, "fresh");
    })
    .await;
    let left = env.node().zrange_with_scores(KEY);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, "fresh");
}

/// SEM-12, MSEM-12, GAP-10: reuse with refresh on; a released hold never
/// comes back.
pub(crate) async fn reuse_with_refresh_with(env: Env, limit: u32, permits: u32) {
    let s1 = AnySem::new(&env, limit, permits, t());
    let s2 = AnySem::new(&env, limit, permits, t());
    for _ in 0..3 {
        let g1 = s1.acquire().await.unwrap();
        let g2 = s2.acquire().await.unwrap();
        sleep(ms(300)).await;
        let mut both = s1.members(g1.identifier());
        both.extend(s2.members(g2.identifier()));
        assert_eq!(sorted(env.node().zrange(KEY)), sorted(both));
        g1.release().await.unwrap();
        g2.release().await.unwrap();
        assert_eq!(env.node().pttl(KEY), -2);
        sleep(ms(300)).await;
        assert_eq!(env.node().pttl(KEY), -2, "no resurrection after release");
    }
}

/// SEM-12.
pub async fn reuse_with_refresh(env: Env) {
    reuse_with_refresh_with(env, 2, 0).await;
}

/// SEM-13, MSEM-13: reuse with refresh off. A holder whose score is older
/// than the lock timeout stays in the ZSET until the next acquire prunes it
/// (and lets a waiter in).
pub(crate) async fn reuse_without_refresh_with(env: Env, limit: u32, permits: u32) {
    let node = env.node();
    let options = || no_refresh().acquire_timeout(ms(20)).build().unwrap();
    let (s1, s2, s3) = (
        AnySem::new(&env, limit, permits, options()),
        AnySem::new(&env, limit, permits, options()),
        AnySem::new(&env, limit, permits, options()),
    );

    // An ordinary cycle first.
    let g1 = s1.acquire().await.unwrap();
    let g2 = s2.acquire().await.unwrap();
    g1.release().await.unwrap();
    g2.release().await.unwrap();
    assert_eq!(node.pttl(KEY), -2);

    let g1 = s1.acquire().await.unwrap();
    sleep(ms(250)).await;
    let g2 = s2.acquire().await.unwrap();
    let err = s3.acquire().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let expected = format!("Acquire {} semaphore:key timeout", s3.kind());
    assert!(err.to_string().starts_with(&expected), "{err}");

    let (m1, m2) = (s1.members(g1.identifier()), s2.members(g2.identifier()));
    let score1 = score_of(node, &m1[0]).expect("s1 is in the ZSET");
    let score2 = score_of(node, &m2[0]).expect("s2 is in the ZSET");
    wait_for("s1's score to age past the lock timeout", PATIENCE, || {
        node.now_ms() > score1 + 510
    })
    .await;
    assert!(
        node.now_ms() < score2 + 450,
        "precondition: s2 still valid (machine too slow?)"
    );
    let mut both = m1.clone();
    both.extend(m2.iter().cloned());
    assert_eq!(
        sorted(node.zrange(KEY)),
        sorted(both),
        "expired members are pruned lazily"
    );

    let g3 = s3.acquire().await.unwrap();
    let mut expected = m2;
    expected.extend(s3.members(g3.identifier()));
    assert_eq!(
        node.zrange(KEY),
        expected,
        "s1 pruned at s3's acquire; s2 then s3 by score"
    );

    assert!(g1.release().await.unwrap_err().is_lost());
    let _ = g2.release().await; // may have expired on a slow machine
    g3.release().await.unwrap();
    assert!(node.zrange(KEY).is_empty());
}

/// SEM-13.
pub async fn reuse_without_refresh(env: Env) {
    reuse_without_refresh_with(env, 2, 0).await;
}

/// SEM-14, MSEM-15: the node crashes and comes back empty. Each holder
/// reports its loss once, refresh does not re-create anything, a new holder
/// works.
pub(crate) async fn node_restart_with(env: Env, limit: u32, permits: u32, holders: usize) {
    let node = env.node();
    let lost: Vec<Arc<AtomicUsize>> = (0..holders)
        .map(|_| Arc::new(AtomicUsize::new(0)))
        .collect();
    let locks: Vec<AnySem> = lost
        .iter()
        .map(|l| AnySem::new(&env, limit, permits, counting(t_builder(), l)))
        .collect();
    let mut guards = Vec::new();
    for l in &locks {
        guards.push(l.acquire().await.unwrap());
    }
    assert_eq!(node.zrange(KEY).len(), holders * permits.max(1) as usize);
    node.stop();
    sleep(Duration::from_secs(1)).await;
    node.start();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        node.zrange_with_scores(KEY),
        [],
        "refresh must not re-create members"
    );
    for (i, (l, g)) in lost.iter().zip(&guards).enumerate() {
        assert_eq!(
            l.load(Ordering::SeqCst),
            1,
            "holder {i} reports its loss once"
        );
        assert!(!g.is_acquired());
    }
    let other = AnySem::new(&env, limit, permits, t());
    let g = other.acquire().await.unwrap();
    assert_eq!(node.zrange(KEY), other.members(g.identifier()));
    for old in guards {
        assert!(old.release().await.unwrap_err().is_lost());
    }
    g.release().await.unwrap();
    assert_eq!(node.pttl(KEY), -2);
}

/// SEM-14.
pub async fn node_restart(env: Env) {
    node_restart_with(env, 3, 0, 3).await;
}

/// SEM-18, MSEM-19, GAP-04: one attempt with an unlimited acquire timeout
/// terminates; a zero acquire timeout makes exactly one attempt.
pub(crate) async fn attempt_limit_with(env: Env, limit: u32, permits: u32) {
    let holders = AnySem::new(&env, limit, permits, t());
    let mut guards = Vec::new();
    while let Some(g) = holders.try_acquire().await.unwrap() {
        guards.push(g);
    }
    let full = sorted(env.node().zrange(KEY));
    let options = t_builder()
        .acquire_timeout(Duration::MAX)
        .max_attempts(1)
        .build()
        .unwrap();
    let third = AnySem::new(&env, limit, permits, options);
    let err = third.acquire().await.unwrap_err();
    assert!(err.to_string().contains("limit of 1 attempt(s)"), "{err}");
    let expected = format!("Acquire {} semaphore:key timeout", third.kind());
    assert!(err.to_string().starts_with(&expected), "{err}");
    let options = t_builder().acquire_timeout(Duration::ZERO).build().unwrap();
    let err = AnySem::new(&env, limit, permits, options)
        .acquire()
        .await
        .unwrap_err();
    assert!(
        matches!(err, LockError::Timeout { attempts: 1, .. }),
        "zero timeout = one attempt: {err}"
    );
    assert_eq!(
        sorted(env.node().zrange(KEY)),
        full,
        "failed attempts change nothing"
    );
    for g in guards {
        g.release().await.unwrap();
    }
}

/// SEM-17/18.
pub async fn attempt_limit(env: Env) {
    attempt_limit_with(env, 2, 0).await;
}

/// WIRE-14: the ZSET's TTL is the lock timeout of the last successful
/// acquire; a failed acquire leaves it alone.
pub(crate) async fn ttl_is_the_lock_timeout_with(env: Env, limit: u32, permits: u32) {
    let node = env.node();
    let short = AnySem::new(&env, limit, permits, no_refresh().build().unwrap());
    let g1 = short.acquire().await.unwrap();
    let pttl = node.pttl(KEY);
    assert!(
        (400..=500).contains(&pttl),
        "PTTL {pttl} after a 500ms acquire"
    );

    // A failed acquire (the key is full for a caller asking more than is
    // left) with a long lock timeout does not touch the TTL.
    let long = || {
        no_refresh()
            .lock_timeout(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let used = node.zrange(KEY).len() as u32;
    let greedy = AnySem::new(&env, used, permits, long());
    assert!(greedy.try_acquire().await.unwrap().is_none());
    let pttl = node.pttl(KEY);
    assert!(
        (0..=500).contains(&pttl),
        "PTTL {pttl} after a failed acquire"
    );

    // A successful one sets it to its own lock timeout.
    let g2 = AnySem::new(&env, limit, permits, long())
        .acquire()
        .await
        .unwrap();
    let pttl = node.pttl(KEY);
    assert!(
        (4_000..=5_000).contains(&pttl),
        "PTTL {pttl} after a 5s acquire"
    );
    let _ = g1.release().await;
    g2.release().await.unwrap();
}

/// WIRE-14.
pub async fn ttl_is_the_lock_timeout(env: Env) {
    ttl_is_the_lock_timeout_with(env, 3, 0).await;
}

/// SEM-19..22, SEM-26 (redsem: scores are the server's clock, not the
/// client's): members are scored with the server's TIME, refresh moves the
/// score to the server's now; a member scored in the future counts, one
/// older than the lock timeout does not.
pub(crate) async fn scores_are_the_server_clock_with(env: Env, permits: u32) {
    let node = env.node();
    let lock = AnySem::new(&env, 3, permits, t());
    let g = lock.acquire().await.unwrap();
    let now = node.now_ms();
    let scored = node.zrange_with_scores(KEY);
    let members = lock.members(g.identifier());
    assert_eq!(sorted(scored.iter().map(|(m, _)| m)), sorted(&members));
    let first = scored[0].1;
    assert!(
        (now - first).abs() <= 1_000,
        "score {first}, server now {now}"
    );
    assert!(
        scored.iter().all(|(_, s)| *s == first),
        "one score per hold: {scored:?}"
    );

    wait_for("a refresh to move the score", PATIENCE, || {
        score_of(node, &members[0]).is_some_and(|s| s > first)
    })
    .await;
    let now = node.now_ms();
    let scored = node.zrange_with_scores(KEY);
    let moved = scored[0].1;
    assert!(
        (now - moved).abs() <= 1_000,
        "score {moved}, server now {now}"
    );
    assert!(
        scored.iter().all(|(_, s)| *s == moved),
        "refreshed together: {scored:?}"
    );
    g.release().await.unwrap();

    // SEM-20/21: a member from a client whose clock runs ahead still counts.
    let one = AnySem::new(&env, permits.max(1), permits, t());
    node.zadd(KEY, node.now_ms() + 450, "ahead");
    assert!(one.try_acquire().await.unwrap().is_none());
    // SEM-22: one older than the lock timeout is pruned and lets us in.
    node.del(KEY);
    node.zadd(KEY, node.now_ms() - 550, "stale");
    let g = one
        .try_acquire()
        .await
        .unwrap()
        .expect("the stale member is pruned");
    assert_eq!(node.zrange(KEY), one.members(g.identifier()));
    g.release().await.unwrap();
}

/// SEM-19..22, SEM-26.
pub async fn scores_are_the_server_clock(env: Env) {
    scores_are_the_server_clock_with(env, 0).await;
}

/// Keys are independent.
pub async fn keys_are_independent(env: Env) {
    let a = Semaphore::with_options(env.backend(), "key1", 1, t()).unwrap();
    let b = Semaphore::with_options(env.backend(), "key2", 1, t()).unwrap();
    let (ga, gb) = futures::join!(a.acquire(), b.acquire());
    let (ga, gb) = (ga.unwrap(), gb.unwrap());
    assert_eq!(env.node().zrange("semaphore:key1"), [ga.identifier()]);
    assert_eq!(env.node().zrange("semaphore:key2"), [gb.identifier()]);
    assert!(a.try_acquire().await.unwrap().is_none());
    ga.release().await.unwrap();
    gb.release().await.unwrap();
}

/// SEM-27/28, GAP-07: releasing a hold that is gone reports the loss and
/// leaves the other members alone.
pub async fn release_after_loss(env: Env) {
    let options = no_refresh().build().unwrap();
    let g = Semaphore::with_options(env.backend(), "key", 3, options)
        .unwrap()
        .acquire()
        .await
        .unwrap();
    refill(&env, &["other"]);
    let err = g.release().await.unwrap_err();
    assert!(
        matches!(
            err,
            LockError::Lost {
                reason: LostReason::Gone,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(env.node().zrange(KEY), ["other"]);
}

/// GAP-22: dropping a guard releases its slot in the background, promptly.
pub async fn drop_releases(env: Env) {
    let s = sem(&env, 2);
    let keep = s.acquire().await.unwrap();
    let g = s.acquire().await.unwrap();
    drop(g);
    let node = env.node();
    wait_for(
        "the dropped guard's release",
        Duration::from_secs(2),
        || node.zrange(KEY).len() == 1,
    )
    .await;
    assert_eq!(node.zrange(KEY), [keep.identifier()]);
    keep.release().await.unwrap();
}

/// The scoped form runs the work under the semaphore and releases after.
pub async fn with_lock_runs_and_releases(env: Env) {
    let s = sem(&env, 2);
    let node = env.nodes[0].clone();
    let seen = s
        .with_lock(|| async move {
            let v = node.zrange(KEY);
            sleep(ms(20)).await;
            v
        })
        .await
        .unwrap();
    assert_eq!(seen.len(), 1, "the work ran while holding one slot");
    assert_eq!(env.node().pttl(KEY), -2);
}

/// GAP-06/17: one instance with a fixed identifier holds one slot at a
/// time.
pub async fn fixed_identifier_holds_once(env: Env) {
    let options = t_builder().identifier("solo").build().unwrap();
    let s = Semaphore::with_options(env.backend(), "key", 3, options).unwrap();
    let g = s.acquire().await.unwrap();
    let err = s.try_acquire().await.unwrap_err();
    assert!(matches!(err, LockError::AlreadyHeld { .. }), "{err}");
    let err = s.acquire().await.unwrap_err();
    assert!(matches!(err, LockError::AlreadyHeld { .. }), "{err}");
    assert_eq!(env.node().zrange(KEY), ["solo"]);
    g.release().await.unwrap();
    let g = s.acquire().await.unwrap();
    assert_eq!(env.node().zrange(KEY), ["solo"]);
    g.release().await.unwrap();
}

/// Tasks sharing one instance never hold more than the limit at once.
pub(crate) async fn shared_instance_respects_limit_with(env: Env, limit: u32, permits: u32) {
    let options = t_builder()
        .acquire_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let lock = AnySem::new(&env, limit, permits, options);
    let most = (limit / permits.max(1)) as usize;
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let tasks = (0..8).map(|_| {
        let (lock, inside, peak) = (lock.clone(), inside.clone(), peak.clone());
        async move {
            for _ in 0..5 {
                let g = lock.acquire().await.unwrap();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                assert!(now <= most, "{now} holders at once, at most {most} fit");
                peak.fetch_max(now, Ordering::SeqCst);
                sleep(ms(3)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                g.release().await.unwrap();
            }
        }
    });
    join_all(tasks).await;
    assert!(
        peak.load(Ordering::SeqCst) >= 2.min(most),
        "the tasks never overlapped"
    );
    assert_eq!(env.node().pttl(KEY), -2);
}

/// Tasks sharing one instance never hold more than the limit at once.
pub async fn shared_instance_respects_limit(env: Env) {
    shared_instance_respects_limit_with(env, 3, 0).await;
}

/// WIRE-11: the acquire, refresh and release scripts fall back to EVAL
/// after SCRIPT FLUSH.
pub(crate) async fn noscript_falls_back_to_eval_with(env: Env, permits: u32) {
    let node = env.node();
    let s1 = AnySem::new(&env, 4, permits, t());
    let g1 = s1.acquire().await.unwrap();
    node.flush_scripts();
    let g2 = s1.acquire().await.unwrap(); // acquire script not cached
    let first = score_of(node, &s1.members(g1.identifier())[0]).unwrap();
    node.flush_scripts();
    wait_for("a refresh without the cached script", PATIENCE, || {
        score_of(node, &s1.members(g1.identifier())[0]).is_some_and(|s| s > first)
    })
    .await;
    assert!(g1.is_acquired() && g2.is_acquired());
    node.flush_scripts();
    g1.release().await.unwrap(); // release script not cached
    g2.release().await.unwrap();
    assert_eq!(node.pttl(KEY), -2);
}

/// WIRE-11.
pub async fn noscript_falls_back_to_eval(env: Env) {
    noscript_falls_back_to_eval_with(env, 0).await;
}

/// Resumes a paused node when dropped, even if the scenario fails.
struct Paused<'a>(&'a dyn Node);

impl<'a> Paused<'a> {
    fn new(node: &'a dyn Node) -> Self {
        node.pause();
        Paused(node)
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.0.resume();
    }
}

/// GAP-09/19: a node that stops answering for less than the lock timeout
/// is not a loss: failed or timed-out refreshes are retried and the hold
/// stays.
pub(crate) async fn survives_a_short_pause_with(env: Env, limit: u32, permits: u32) {
    let node = env.node();
    let lost = Arc::new(AtomicUsize::new(0));
    let options = counting(t_builder().lock_timeout(ms(1_000)), &lost);
    let lock = AnySem::new(&env, limit, permits, options);
    let g = lock.acquire().await.unwrap();
    {
        let _paused = Paused::new(node);
        sleep(ms(300)).await;
    }
    let before = score_of(node, &lock.members(g.identifier())[0]).expect("the hold is there");
    wait_for("a refresh after the pause", PATIENCE, || {
        score_of(node, &lock.members(g.identifier())[0]).is_some_and(|s| s > before)
    })
    .await;
    assert_eq!(
        lost.load(Ordering::SeqCst),
        0,
        "a short outage is not a loss"
    );
    assert!(g.is_acquired());
    assert_eq!(
        sorted(node.zrange(KEY)),
        sorted(lock.members(g.identifier()))
    );
    g.release().await.unwrap();
    assert_eq!(node.pttl(KEY), -2);
}

/// GAP-09/19.
pub async fn survives_a_short_pause(env: Env) {
    survives_a_short_pause_with(env, 2, 0).await;
}

/// Calls `$m! { name: nodes => path, ... }` with this file's scenarios.
macro_rules! semaphore_scenarios {
    ($m:ident) => {
        $m! {
            semaphore_acquire_release: 1 => semaphore::acquire_release,
            semaphore_identifiers: 1 => semaphore::identifiers,
            semaphore_invalid_arguments: 1 => semaphore::invalid_arguments,
            semaphore_acquire_times_out_when_busy: 1 => semaphore::acquire_times_out_when_busy,
            semaphore_dropping_a_waiting_acquire_cancels_it: 1 => semaphore::dropping_a_waiting_acquire_cancels_it,
            semaphore_try_acquire: 1 => semaphore::try_acquire,
            semaphore_refresh_keeps_the_holders: 1 => semaphore::refresh_keeps_the_holders,
            semaphore_stop_refresh_lets_it_expire: 1 => semaphore::stop_refresh_lets_it_expire,
            semaphore_fairness_batches: 1 => semaphore::fairness_batches,
            semaphore_acquired_externally: 1 => semaphore::acquired_externally,
            semaphore_acquired_externally_but_gone: 1 => semaphore::acquired_externally_but_gone,
            semaphore_lost_when_refilled: 1 => semaphore::lost_when_refilled,
            semaphore_lost_when_deleted: 1 => semaphore::lost_when_deleted,
            semaphore_failed_refresh_still_prunes: 1 => semaphore::failed_refresh_still_prunes,
            semaphore_reuse_with_refresh: 1 => semaphore::reuse_with_refresh,
            semaphore_reuse_without_refresh: 1 => semaphore::reuse_without_refresh,
            semaphore_node_restart: 1 => semaphore::node_restart,
            semaphore_attempt_limit: 1 => semaphore::attempt_limit,
            semaphore_ttl_is_the_lock_timeout: 1 => semaphore::ttl_is_the_lock_timeout,
            semaphore_scores_are_the_server_clock: 1 => semaphore::scores_are_the_server_clock,
            semaphore_keys_are_independent: 1 => semaphore::keys_are_independent,
            semaphore_release_after_loss: 1 => semaphore::release_after_loss,
            semaphore_drop_releases: 1 => semaphore::drop_releases,
            semaphore_with_lock_runs_and_releases: 1 => semaphore::with_lock_runs_and_releases,
            semaphore_fixed_identifier_holds_once: 1 => semaphore::fixed_identifier_holds_once,
            semaphore_shared_instance_respects_limit: 1 => semaphore::shared_instance_respects_limit,
            semaphore_noscript_falls_back_to_eval: 1 => semaphore::noscript_falls_back_to_eval,
            semaphore_survives_a_short_pause: 1 => semaphore::survives_a_short_pause,
        }
    };
}

pub(crate) use semaphore_scenarios;
