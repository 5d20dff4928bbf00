//! Issue 12: every acquisition carries a fencing token, greater than every
//! token handed out before for the key, on all six lock kinds; Redlock
//! confirms its token on a quorum; a takeover gets a token of its own.
//! (Several OS processes and real restarts: tests/fencing_processes.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::executor::block_on;
use redsem_core::{
    Arg, BackendError, FencedResource, FencedWrite, LockGuard, LockOptions, MultiSemaphore, Mutex,
    RedisBackend, RedlockMultiSemaphore, RedlockMutex, RedlockSemaphore, Reply, Script, Semaphore,
};
use redsem_mock::MockBackend;

/// Tokens of `n` acquire-release rounds of `acquire`.
fn tokens<F, Fut>(n: usize, acquire: F) -> Vec<u64>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<LockGuard, redsem_core::LockError>>,
{
    block_on(async {
        let mut seen = Vec::new();
        for _ in 0..n {
            let guard = acquire().await.unwrap();
            seen.push(guard.fencing_token());
            guard.release().await.unwrap();
        }
        seen
    })
}

#[track_caller]
fn assert_increasing(kind: &str, tokens: &[u64]) {
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]) && tokens[0] >= 1,
        "{kind}: tokens not strictly increasing: {tokens:?}"
    );
}

fn nodes() -> Vec<MockBackend> {
    vec![MockBackend::new(), MockBackend::new(), MockBackend::new()]
}

#[test]
fn every_kind_hands_out_strictly_increasing_tokens() {
    let redis = MockBackend::new();
    let mutex = Mutex::new(redis.clone(), "k").unwrap();
    assert_increasing("Mutex", &tokens(5, || mutex.acquire()));
    let sem = Semaphore::new(redis.clone(), "k", 2).unwrap();
    assert_increasing("Semaphore", &tokens(5, || sem.acquire()));
    let multi = MultiSemaphore::new(redis.clone(), "m", 4, 2).unwrap();
    assert_increasing("MultiSemaphore", &tokens(5, || multi.acquire()));

    let mutex = RedlockMutex::new(nodes(), "k").unwrap();
    assert_increasing("RedlockMutex", &tokens(5, || mutex.acquire()));
    let sem = RedlockSemaphore::new(nodes(), "k", 2).unwrap();
    assert_increasing("RedlockSemaphore", &tokens(5, || sem.acquire()));
    let multi = RedlockMultiSemaphore::new(nodes(), "m", 4, 2).unwrap();
    assert_increasing("RedlockMultiSemaphore", &tokens(5, || multi.acquire()));
}

#[test]
fn holders_at_once_get_distinct_tokens_and_instances_share_the_counter() {
    block_on(async {
        let redis = MockBackend::new();
        let a = Semaphore::new(redis.clone(), "pool", 3).unwrap();
        let b = Semaphore::new(redis.clone(), "pool", 3).unwrap();
        let (g1, g2, g3) = (
            a.acquire().await.unwrap(),
            b.acquire().await.unwrap(),
            a.acquire().await.unwrap(),
        );
        let held = [g1.fencing_token(), g2.fencing_token(), g3.fencing_token()];
        assert_eq!(held, [1, 2, 3]);
        // A mutex on the same name is another key with its own counter.
        let mutex = Mutex::new(redis.clone(), "pool").unwrap();
        assert_eq!(mutex.acquire().await.unwrap().fencing_token(), 1);
        assert_eq!(redis.get("{semaphore:pool}:fence").as_deref(), Some("3"));
        assert_eq!(redis.get("{mutex:pool}:fence").as_deref(), Some("1"));
    });
}

#[test]
fn a_busy_attempt_does_not_use_up_a_token() {
    block_on(async {
        let redis = MockBackend::new();
        let mutex = Mutex::new(redis.clone(), "k").unwrap();
        let first = mutex.acquire().await.unwrap();
        for _ in 0..3 {
            assert!(mutex.try_acquire().await.unwrap().is_none());
        }
        first.release().await.unwrap();
        assert_eq!(mutex.acquire().await.unwrap().fencing_token(), 2);
    });
}

#[test]
fn redlock_raises_lagging_counters_to_the_highest_and_converges() {
    block_on(async {
        let nodes = nodes();
        nodes[2].set("{mutex:k}:fence", "100"); // node 3 has seen more
        let mutex = RedlockMutex::new(nodes.clone(), "k").unwrap();
        let guard = mutex.acquire().await.unwrap();
        assert_eq!(guard.fencing_token(), 101);
        // Nodes 1 and 2 answered 1 and were raised to 101, so a quorum
        // holds the token: a later quorum must meet a counter at 101.
        for node in &nodes {
            assert_eq!(node.get("{mutex:k}:fence").as_deref(), Some("101"));
        }
        guard.release().await.unwrap();
        // A new instance (no memory of 101) still goes past it.
        let other = RedlockMutex::new(nodes.clone(), "k").unwrap();
        assert_eq!(other.acquire().await.unwrap().fencing_token(), 102);
    });
}

/// A node on which "another holder" takes the token just before this
/// holder's raise reaches it (the race the raise exists for), for the
/// first `overtake` raises across all nodes.
#[derive(Debug, Clone)]
struct Overtaken {
    inner: MockBackend,
    overtake: Arc<AtomicUsize>,
}

impl Overtaken {
    fn nodes(mocks: &[MockBackend], overtake: &Arc<AtomicUsize>) -> Vec<Overtaken> {
        mocks
            .iter()
            .map(|inner| Overtaken {
                inner: inner.clone(),
                overtake: overtake.clone(),
            })
            .collect()
    }

    fn before_call(&self, script: &Script, keys: &[&str], args: &[Arg<'_>]) {
        let raise =
            script.name() == "fence" && args.get(2).is_some_and(|a| a.to_string() == "raise");
        let take = |n: usize| n.checked_sub(1);
        if raise
            && self
                .overtake
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, take)
                .is_ok()
        {
            self.inner.set(keys[1], &args[1].to_string());
        }
    }
}

#[async_trait]
impl RedisBackend for Overtaken {
    async fn eval_sha(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        self.before_call(script, keys, args);
        self.inner.eval_sha(script, keys, args).await
    }

    async fn eval(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        // Only after a NOSCRIPT from eval_sha, which was intercepted.
        self.inner.eval(script, keys, args).await
    }
}

/// Three nodes whose counters are 0, 50 and 60: an acquire's nodes answer
/// 1, 51 and 61, so token 61 needs one of nodes 1 and 2 raised to it.
fn lagging_nodes(key: &str) -> Vec<MockBackend> {
    let mocks = nodes();
    mocks[1].set(key, "50");
    mocks[2].set(key, "60");
    mocks
}

#[test]
fn redlock_confirms_a_token_when_one_raise_is_overtaken() {
    block_on(async {
        let mocks = lagging_nodes("{semaphore:k}:fence");
        let overtake = Arc::new(AtomicUsize::new(1));
        let sem = RedlockSemaphore::new(Overtaken::nodes(&mocks, &overtake), "k", 5).unwrap();
        let guard = sem
            .try_acquire()
            .await
            .unwrap()
            .expect("node 3 and one raised node");
        assert_eq!(guard.fencing_token(), 61);
        assert_eq!(overtake.load(Ordering::SeqCst), 0, "a raise was overtaken");
        guard.release().await.unwrap();
    });
}

#[test]
fn redlock_refuses_a_token_another_holder_confirmed_first() {
    block_on(async {
        let mocks = lagging_nodes("{mutex:k}:fence");
        let overtake = Arc::new(AtomicUsize::new(2));
        let options = LockOptions::builder().max_attempts(1).build().unwrap();
        let nodes = Overtaken::nodes(&mocks, &overtake);
        let mutex = RedlockMutex::with_options(nodes, "k", options).unwrap();
        // Both raises find 61 taken: only node 3 holds it for this holder.
        assert!(mutex.try_acquire().await.unwrap().is_none());
        assert_eq!(overtake.load(Ordering::SeqCst), 0);
        assert!(redsem_core::flush(Duration::from_secs(5)).await);
        for m in &mocks {
            assert_eq!(m.get("mutex:k"), None, "the refused attempt is undone");
        }
        // The next attempt asks for more than it has seen.
        let guard = mutex.try_acquire().await.unwrap().expect("free");
        assert_eq!(guard.fencing_token(), 62);
        guard.release().await.unwrap();
    });
}

#[test]
fn a_takeover_gets_a_newer_token_that_fences_out_the_old_holder() {
    block_on(async {
        let redis = MockBackend::new();
        let report = FencedResource::new("report");
        let first = Mutex::new(redis.clone(), "job")
            .unwrap()
            .acquire()
            .await
            .unwrap();
        let old_token = first.fencing_token();
        let id = first.detach();
        let options = LockOptions::builder()
            .identifier(id)
            .acquired_externally(true)
            .build()
            .unwrap();
        let worker = Mutex::with_options(redis.clone(), "job", options).unwrap();
        let taken = worker.acquire().await.unwrap();
        assert!(taken.fencing_token() > old_token);
        let new = report
            .write(&redis, taken.fencing_token(), "worker")
            .await
            .unwrap();
        assert_eq!(new, FencedWrite::Written);
        let late = report.write(&redis, old_token, "scheduler").await.unwrap();
        assert_eq!(
            late,
            FencedWrite::Stale {
                newest: taken.fencing_token()
            }
        );
        taken.release().await.unwrap();
    });
}

#[test]
fn a_redlock_takeover_gets_a_newer_token_too() {
    block_on(async {
        let nodes = nodes();
        let first = RedlockMutex::new(nodes.clone(), "job")
            .unwrap()
            .acquire()
            .await
            .unwrap();
        let old_token = first.fencing_token();
        let id = first.detach();
        let options = LockOptions::builder()
            .identifier(id)
            .acquired_externally(true)
            .build()
            .unwrap();
        let worker = RedlockMutex::with_options(nodes.clone(), "job", options).unwrap();
        let taken = worker.acquire().await.unwrap();
        assert!(taken.fencing_token() > old_token);
        taken.release().await.unwrap();
    });
}

/// `fencing_tokens(false)`: no counter key on any node, token 0, and a
/// mutex acquire is a plain `SET NX PX`; every kind still excludes.
#[test]
fn fencing_can_be_turned_off() {
    block_on(async {
        let options = LockOptions::builder()
            .fencing_tokens(false)
            .build()
            .unwrap();
        let redis = MockBackend::new();
        let mutex = Mutex::with_options(redis.clone(), "k", options.clone()).unwrap();
        let guard = mutex.acquire().await.unwrap();
        assert_eq!(guard.fencing_token(), 0);
        assert_eq!(redis.script_calls("set_nx_px"), 1);
        assert!(
            mutex.try_acquire().await.unwrap().is_none(),
            "still exclusive"
        );
        guard.release().await.unwrap();
        let sem = Semaphore::with_options(redis.clone(), "k", 1, options.clone()).unwrap();
        let guard = sem.acquire().await.unwrap();
        assert_eq!(guard.fencing_token(), 0);
        assert!(
            sem.try_acquire().await.unwrap().is_none(),
            "still exclusive"
        );
        guard.release().await.unwrap();
        let multi = MultiSemaphore::with_options(redis.clone(), "m", 2, 2, options.clone());
        let guard = multi.unwrap().acquire().await.unwrap();
        assert_eq!(guard.fencing_token(), 0);
        guard.release().await.unwrap();
        for counter in [
            "{mutex:k}:fence",
            "{semaphore:k}:fence",
            "{semaphore:m}:fence",
        ] {
            assert!(!redis.exists(counter), "{counter} was created");
        }

        let nodes = nodes();
        let redlock = RedlockMutex::with_options(nodes.clone(), "k", options.clone()).unwrap();
        let guard = redlock.acquire().await.unwrap();
        assert_eq!(guard.fencing_token(), 0);
        guard.release().await.unwrap();
        let redlock = RedlockSemaphore::with_options(nodes.clone(), "k", 2, options).unwrap();
        let guard = redlock.acquire().await.unwrap();
        assert_eq!(guard.fencing_token(), 0);
        guard.release().await.unwrap();
        for node in &nodes {
            assert!(!node.exists("{mutex:k}:fence") && !node.exists("{semaphore:k}:fence"));
        }
    });
}
