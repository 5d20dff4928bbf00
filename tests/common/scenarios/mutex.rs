//! Mutex behaviours (redis-semaphore MUTEX-*, LOCK-*, WIRE-01..03) plus
//! redsem's own guarantees.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{select, Either};
use redsem_core::{LockError, LockKind, LockOptions, LostReason, Mutex};

use crate::common::timing::{ms, sleep, t, t_builder, NOTICE, OUTLIVE};
use crate::common::Env;

const KEY: &str = "mutex:key";

fn is_uuid_v4(s: &str) -> bool {
    uuid_like(s) && s.as_bytes()[14] == b'4'
}

fn uuid_like(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

/// MUTEX-06, WIRE-01: the key holds the identifier while held, then is gone.
pub async fn acquire_release(env: Env) {
    let node = env.node();
    let mutex = Mutex::new(env.backend(), "key").unwrap();
    let guard = mutex.acquire().await.unwrap();
    assert!(guard.is_acquired());
    assert_eq!(guard.kind(), LockKind::Mutex);
    assert_eq!(node.get(KEY).as_deref(), Some(guard.identifier()));
    let pttl = node.pttl(KEY);
    assert!(
        (9_000..=10_000).contains(&pttl),
        "default lock timeout 10s, PTTL {pttl}"
    );
    guard.release().await.unwrap();
    assert_eq!(node.get(KEY), None);
}

/// MUTEX-03/04/05, WIRE-13: identifiers.
pub async fn identifiers(env: Env) {
    let mutex = Mutex::new(env.backend(), "key").unwrap();
    assert_eq!(mutex.identifier(), None);
    let g = mutex.acquire().await.unwrap();
    assert!(is_uuid_v4(g.identifier()), "{}", g.identifier());
    g.release().await.unwrap();

    let options = LockOptions::builder()
        .identifier_suffix("abc")
        .build()
        .unwrap();
    let g = Mutex::with_options(env.backend(), "key", options)
        .unwrap()
        .acquire()
        .await
        .unwrap();
    let (uuid, suffix) = g.identifier().split_at(36);
    assert!(is_uuid_v4(uuid) && suffix == "-abc", "{}", g.identifier());
    g.release().await.unwrap();

    let options = LockOptions::builder().identifier("abc").build().unwrap();
    let fixed = Mutex::with_options(env.backend(), "key", options).unwrap();
    assert_eq!(fixed.identifier(), Some("abc"));
    let g = fixed.acquire().await.unwrap();
    assert_eq!(g.identifier(), "abc");
    assert_eq!(env.node().get(KEY).as_deref(), Some("abc"));
    g.release().await.unwrap();
}

/// MUTEX-01 (keys): an empty key is an error that names the key.
pub async fn empty_key_is_rejected(env: Env) {
    let err = Mutex::new(env.backend(), "").unwrap_err();
    assert!(
        matches!(err, LockError::InvalidOption { option: "key", .. }),
        "{err}"
    );
}

/// MUTEX-07: a busy mutex times out with the kind and key in the message.
pub async fn acquire_times_out_when_busy(env: Env) {
    let m1 = Mutex::with_options(env.backend(), "key", t()).unwrap();
    let m2 = Mutex::with_options(env.backend(), "key", t()).unwrap();
    let g1 = m1.acquire().await.unwrap();
    let start = Instant::now();
    let err = m2.acquire().await.unwrap_err();
    let waited = start.elapsed();
    assert!(err.is_timeout(), "{err}");
    assert!(
        err.to_string()
            .starts_with("Acquire mutex mutex:key timeout"),
        "{err}"
    );
    assert!(
        waited >= ms(150),
        "gave up after {waited:?}, before the acquire timeout"
    );
    assert_eq!(env.node().get(KEY).as_deref(), Some(g1.identifier()));
    g1.release().await.unwrap();
    assert_eq!(env.node().get(KEY), None);
}

/// MUTEX-08: cancelling a waiting acquire is dropping its future; nothing
/// of the waiter stays behind.
pub async fn dropping_a_waiting_acquire_cancels_it(env: Env) {
    let m1 = Mutex::with_options(env.backend(), "key", t()).unwrap();
    let waiter = Mutex::with_options(
        env.backend(),
        "key",
        t_builder()
            .acquire_timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    )
    .unwrap();
    let g1 = m1.acquire().await.unwrap();
    let start = Instant::now();
    let acquire = std::pin::pin!(waiter.acquire());
    match select(acquire, std::pin::pin!(sleep(ms(50)))).await {
        Either::Left((r, _)) => panic!("acquire returned while the mutex was held: {r:?}"),
        Either::Right(_) => {}
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(env.node().get(KEY).as_deref(), Some(g1.identifier()));
    g1.release().await.unwrap();
    sleep(ms(50)).await;
    assert_eq!(
        env.node().get(KEY),
        None,
        "the cancelled waiter must not take the lock later"
    );
}

/// MUTEX-09/10, MUTEX-24: try_acquire makes one attempt and is not an error
/// when busy.
pub async fn try_acquire(env: Env) {
    let m1 = Mutex::with_options(env.backend(), "key", t()).unwrap();
    let m2 = Mutex::with_options(env.backend(), "key", t()).unwrap();
    let g1 = m1.try_acquire().await.unwrap().expect("free mutex");
    let start = Instant::now();
    assert!(m2.try_acquire().await.unwrap().is_none());
    assert!(
        start.elapsed() < ms(140),
        "try_acquire must not wait for the acquire timeout"
    );
    g1.release().await.unwrap();
    assert_eq!(env.node().get(KEY), None);
}

/// MUTEX-11: refresh keeps the lock past its lock timeout.
pub async fn refresh_keeps_the_lock(env: Env) {
    let mutex = Mutex::with_options(env.backend(), "key", t()).unwrap();
    let g = mutex.acquire().await.unwrap();
    sleep(OUTLIVE).await;
    assert_eq!(env.node().get(KEY).as_deref(), Some(g.identifier()));
    assert!(g.is_acquired());
    g.release().await.unwrap();
    assert_eq!(env.node().get(KEY), None);
}

/// MUTEX-12: after stop_refresh the lock expires, and the guard says so.
pub async fn stop_refresh_lets_it_expire(env: Env) {
    let mutex = Mutex::with_options(env.backend(), "key", t()).unwrap();
    let g = mutex.acquire().await.unwrap();
    g.stop_refresh();
    sleep(OUTLIVE).await;
    assert_eq!(env.node().get(KEY), None);
    assert!(!g.is_acquired());
    let lost = g.lost().await;
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
}

/// MUTEX-14/15: a hold made elsewhere is taken over with one refresh, and
/// kept alive with the new lock timeout.
pub async fn acquired_externally(env: Env) {
    let ext_options = t_builder()
        .refresh_interval(Duration::ZERO)
        .build()
        .unwrap();
    let ext = Mutex::with_options(env.backend(), "key", ext_options).unwrap();
    // the other process hands its hold over without releasing it
    let id = ext.acquire().await.unwrap().detach();

    let options = t_builder()
        .identifier(&id)
        .acquired_externally(true)
        .build()
        .unwrap();
    let local = Mutex::with_options(env.backend(), "key", options).unwrap();
    let g = local.acquire().await.unwrap();
    assert_eq!(g.identifier(), id);
    sleep(OUTLIVE).await;
    assert_eq!(
        env.node().get(KEY).as_deref(),
        Some(id.as_str()),
        "kept alive by local's refresh"
    );
    g.release().await.unwrap();
    assert_eq!(env.node().get(KEY), None);

    // The flag is spent: the next acquire is a normal one.
    let g = local.acquire().await.unwrap();
    assert_eq!(env.node().get(KEY).as_deref(), Some(id.as_str()));
    g.release().await.unwrap();
}

/// Taking over a hold that is gone fails (one attempt, no waiting).
pub async fn acquired_externally_but_gone(env: Env) {
    let options = t_builder()
        .identifier("nobody")
        .acquired_externally(true)
        .build()
        .unwrap();
    let local = Mutex::with_options(env.backend(), "key", options).unwrap();
    assert!(local.try_acquire().await.unwrap().is_none());
    let err = local.acquire().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(env.node().get(KEY), None);
}

fn counting_options(count: &Arc<AtomicUsize>) -> LockOptions {
    let count = count.clone();
    t_builder()
        .on_lock_lost(move |err| {
            assert!(err.is_lost(), "{err}");
            count.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap()
}

async fn lost_when(env: Env, tamper: impl FnOnce(&Env)) {
    let lost = Arc::new(AtomicUsize::new(0));
    let mutex = Mutex::with_options(env.backend(), "key", counting_options(&lost)).unwrap();
    let g = mutex.acquire().await.unwrap();
    tamper(&env);
    sleep(NOTICE).await;
    assert!(!g.is_acquired());
    assert_eq!(
        lost.load(Ordering::SeqCst),
        1,
        "the loss is reported exactly once"
    );
    let err = g.lost().await;
    assert!(
        err.to_string().starts_with("Lost mutex for key mutex:key"),
        "{err}"
    );
    sleep(ms(250)).await;
    assert_eq!(lost.load(Ordering::SeqCst), 1, "no second report");
    let err = g.release().await.unwrap_err();
    assert!(err.is_lost(), "release reports the loss too: {err}");
}

/// MUTEX-16/18: another identifier took the key.
pub async fn lost_when_taken(env: Env) {
    lost_when(env, |env| env.node().set(KEY, "222")).await;
    // (the other holder's value is untouched by our release)
}

/// MUTEX-17/19: the key vanished.
pub async fn lost_when_deleted(env: Env) {
    lost_when(env, |env| env.node().del(KEY)).await;
}

/// MUTEX-20: reuse over several lifecycles; a released lock never comes back.
pub async fn reuse(env: Env) {
    let mutex = Mutex::with_options(env.backend(), "key", t()).unwrap();
    for _ in 0..3 {
        let g = mutex.acquire().await.unwrap();
        sleep(ms(300)).await;
        assert_eq!(env.node().get(KEY).as_deref(), Some(g.identifier()));
        g.release().await.unwrap();
        assert_eq!(env.node().get(KEY), None);
        sleep(ms(300)).await;
        assert_eq!(env.node().get(KEY), None, "no resurrection after release");
    }
}

/// MUTEX-21: the node crashes and comes back empty: the loss is reported,
/// nothing is re-created, and a new lock works.
pub async fn node_restart(env: Env) {
    let lost = Arc::new(AtomicUsize::new(0));
    let mutex = Mutex::with_options(env.backend(), "key", counting_options(&lost)).unwrap();
    let g = mutex.acquire().await.unwrap();
    env.node().stop();
    sleep(Duration::from_secs(1)).await;
    env.node().start();
    sleep(Duration::from_secs(1)).await;
    assert_eq!(
        env.node().get(KEY),
        None,
        "refresh must not re-create the key"
    );
    assert_eq!(lost.load(Ordering::SeqCst), 1);
    assert!(!g.is_acquired());
    let other = Mutex::with_options(env.backend(), "key", t()).unwrap();
    let g2 = other.acquire().await.unwrap();
    assert_eq!(env.node().get(KEY).as_deref(), Some(g2.identifier()));
    assert!(g.release().await.unwrap_err().is_lost());
    g2.release().await.unwrap();
}

/// MUTEX-25: one attempt with an unlimited acquire timeout terminates.
pub async fn attempt_limit(env: Env) {
    let holder = Mutex::with_options(env.backend(), "key", t()).unwrap();
    let g = holder.acquire().await.unwrap();
    let options = t_builder()
        .acquire_timeout(Duration::MAX)
        .max_attempts(1)
        .build()
        .unwrap();
    let err = Mutex::with_options(env.backend(), "key", options)
        .unwrap()
        .acquire()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("limit of 1 attempt(s)"), "{err}");
    let options = t_builder().acquire_timeout(Duration::ZERO).build().unwrap();
    let err = Mutex::with_options(env.backend(), "key", options)
        .unwrap()
        .acquire()
        .await
        .unwrap_err();
    assert!(
        matches!(err, LockError::Timeout { attempts: 1, .. }),
        "zero timeout = one attempt: {err}"
    );
    g.release().await.unwrap();
}

/// MUTEX-27, WIRE-01: the TTL is the lock timeout.
pub async fn ttl_is_the_lock_timeout(env: Env) {
    let options = t_builder()
        .refresh_interval(Duration::ZERO)
        .build()
        .unwrap();
    let g = Mutex::with_options(env.backend(), "key2", options)
        .unwrap()
        .acquire()
        .await
        .unwrap();
    let pttl = env.node().pttl("mutex:key2");
    assert!((400..=500).contains(&pttl), "PTTL {pttl}");
    g.release().await.unwrap();
}

/// MUTEX-29: keys are independent.
pub async fn keys_are_independent(env: Env) {
    let a = Mutex::with_options(env.backend(), "key1", t()).unwrap();
    let b = Mutex::with_options(env.backend(), "key2", t()).unwrap();
    let (ga, gb) = futures::join!(a.acquire(), b.acquire());
    let (ga, gb) = (ga.unwrap(), gb.unwrap());
    assert!(a.try_acquire().await.unwrap().is_none());
    ga.release().await.unwrap();
    gb.release().await.unwrap();
}

/// MUTEX-34, GAP-07: releasing a hold that is gone reports the loss and
/// leaves another holder alone.
pub async fn release_after_takeover(env: Env) {
    let options = t_builder()
        .refresh_interval(Duration::ZERO)
        .build()
        .unwrap();
    let g = Mutex::with_options(env.backend(), "key", options)
        .unwrap()
        .acquire()
        .await
        .unwrap();
    env.node().set(KEY, "other");
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
    assert_eq!(env.node().get(KEY).as_deref(), Some("other"));
}

/// Dropping a guard releases the lock in the background, promptly.
pub async fn drop_releases(env: Env) {
    let mutex = Mutex::with_options(env.backend(), "key", t()).unwrap();
    let g = mutex.acquire().await.unwrap();
    drop(g);
    let deadline = Instant::now() + Duration::from_secs(2);
    while env.node().get(KEY).is_some() {
        assert!(Instant::now() < deadline, "dropped guard was not released");
        sleep(ms(5)).await;
    }
}

/// The scoped form runs the work under the lock and releases after it.
pub async fn with_lock_runs_and_releases(env: Env) {
    let mutex = Mutex::with_options(env.backend(), "key", t()).unwrap();
    let node = env.nodes[0].clone();
    let seen = mutex
        .with_lock(|| async move {
            let v = node.get(KEY);
            sleep(ms(20)).await;
            v
        })
        .await
        .unwrap();
    assert!(seen.is_some(), "the work ran while the key was held");
    assert_eq!(env.node().get(KEY), None);
}

/// The scoped form drops the work when the lock is lost mid-way.
pub async fn with_lock_stops_work_on_loss(env: Env) {
    let mutex = Mutex::with_options(env.backend(), "key", t()).unwrap();
    let node = env.nodes[0].clone();
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let start = Instant::now();
    let err = mutex
        .with_lock(|| async move {
            node.del(KEY); // someone breaks the lock
            sleep(Duration::from_secs(5)).await;
            f.fetch_add(1, Ordering::SeqCst);
        })
        .await
        .unwrap_err();
    assert!(err.is_lost(), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "work was not dropped at the loss"
    );
    assert_eq!(finished.load(Ordering::SeqCst), 0);
}

/// One instance with a fixed identifier never holds twice.
pub async fn fixed_identifier_holds_once(env: Env) {
    let options = t_builder().identifier("solo").build().unwrap();
    let mutex = Mutex::with_options(env.backend(), "key", options).unwrap();
    let g = mutex.acquire().await.unwrap();
    let err = mutex.try_acquire().await.unwrap_err();
    assert!(matches!(err, LockError::AlreadyHeld { .. }), "{err}");
    g.release().await.unwrap();
    let g = mutex.acquire().await.unwrap();
    g.release().await.unwrap();
}

/// One shared instance serialises tasks (each acquire has its own id).
pub async fn shared_instance_serialises_tasks(env: Env) {
    let options = t_builder()
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mutex = Mutex::with_options(env.backend(), "key", options).unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let tasks = (0..8).map(|_| {
        let (mutex, inside) = (mutex.clone(), inside.clone());
        async move {
            for _ in 0..5 {
                let g = mutex.acquire().await.unwrap();
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two holders at once"
                );
                sleep(ms(1)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                g.release().await.unwrap();
            }
        }
    });
    futures::future::join_all(tasks).await;
}

/// WIRE-11, UTIL-03: scripts run by EVALSHA and fall back to EVAL.
pub async fn noscript_falls_back_to_eval(env: Env) {
    let mutex = Mutex::with_options(env.backend(), "key", t()).unwrap();
    let g = mutex.acquire().await.unwrap();
    env.node().flush_scripts();
    g.release().await.unwrap(); // the release script is not cached any more
    assert_eq!(env.node().get(KEY), None);
}

/// A frozen node (SIGSTOP): acquire gives up within its bounds instead of
/// hanging, and a held lock whose refresh cannot be confirmed within the
/// lock timeout is reported lost.
pub async fn paused_node(env: Env) {
    let options = t_builder().command_timeout(ms(100)).build().unwrap();
    let lost = Arc::new(AtomicUsize::new(0));
    let count = lost.clone();
    let held_options = t_builder()
        .command_timeout(ms(100))
        .on_lock_lost(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let holder = Mutex::with_options(env.backend(), "key", held_options).unwrap();
    let g = holder.acquire().await.unwrap();

    env.node().pause();
    let start = Instant::now();
    let err = Mutex::with_options(env.backend(), "other", options)
        .unwrap()
        .acquire()
        .await
        .unwrap_err();
    let took = start.elapsed();
    // acquire timeout (150 ms) + one command timeout (100 ms), with margin
    assert!(took < Duration::from_secs(2), "acquire hung for {took:?}");
    assert!(err.is_timeout(), "{err}");
    let cause = std::error::Error::source(&err)
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        cause.contains("no reply within"),
        "the last attempt's error is the source: {cause:?}"
    );

    // The hold cannot be confirmed while the node is frozen.
    let deadline = Instant::now() + Duration::from_secs(3);
    while g.is_acquired() || lost.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "loss not reported while the node was frozen"
        );
        sleep(ms(20)).await;
    }
    let err = g.lost().await;
    assert!(
        matches!(
            err,
            LockError::Lost {
                reason: LostReason::Unconfirmed { .. },
                ..
            }
        ),
        "{err}"
    );
    env.node().resume();

    // After the thaw the lock is free again (expired or released).
    let deadline = Instant::now() + Duration::from_secs(3);
    while env.node().get(KEY).is_some() {
        assert!(Instant::now() < deadline, "the lost hold stayed in Redis");
        sleep(ms(20)).await;
    }
    assert!(g.release().await.unwrap_err().is_lost());
    assert_eq!(lost.load(Ordering::SeqCst), 1);
    let g = Mutex::with_options(env.backend(), "key", t())
        .unwrap()
        .acquire()
        .await
        .unwrap();
    g.release().await.unwrap();
}
