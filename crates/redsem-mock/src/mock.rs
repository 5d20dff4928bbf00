//! [`MockBackend`]: the handle, its [`RedisBackend`] implementation, the
//! clock, the script cache and the call statistics.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redsem_core::{Arg, BackendError, Clock, RedisBackend, Reply, Script};

use crate::commands::{self, Resp};
use crate::node::Node;

/// An in-memory Redis node that runs scripts' real Lua source in an
/// embedded Lua 5.1, as Redis does.
///
/// [`MockBackend::new`] creates a new, empty node; [`Clone`] gives another
/// handle to the same node, so a test can keep one handle for inspection
/// and fault injection while the code under test owns another. Separate
/// `new()` nodes share nothing, which makes them independent Redlock votes.
///
/// Every backend call (`eval_sha`, `eval`, `set_nx_px`, and `run_script`
/// through them) runs atomically under the node's lock. The sync inspection
/// methods are the test's direct view of the node: they are not backend
/// calls, ignore injected faults and are not counted.
///
/// See the [crate documentation](crate) for examples.
///
/// ```
/// use redsem_core::Mutex;
/// use redsem_mock::MockBackend;
/// # futures::executor::block_on(async {
/// let redis = MockBackend::new();
/// let guard = Mutex::new(redis.clone(), "jobs")?.acquire().await?; // the code under test
/// assert!(redis.exists("mutex:jobs")); // the test's view
/// guard.release().await?;
/// # Ok::<(), redsem_core::LockError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct MockBackend {
    pub(crate) node: Arc<Node>,
}

impl MockBackend {
    /// A new node: no keys, an empty script cache, no faults, its clock at
    /// the current wall-clock time.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// assert!(redis.keys().is_empty());
    /// assert!(redis.clone().is_same_node(&redis));
    /// ```
    pub fn new() -> Self {
        MockBackend::with_clock(Clock::manual())
    }

    /// A new, empty node on `clock`: give several nodes one clock (a
    /// Redlock's nodes, say) so one [`advance`](Self::advance) moves them
    /// all.
    ///
    /// ```
    /// use redsem_core::Clock;
    /// use redsem_mock::MockBackend;
    ///
    /// let clock = Clock::manual();
    /// let nodes: Vec<MockBackend> = (0..3).map(|_| MockBackend::with_clock(clock.clone())).collect();
    /// let before = nodes[2].now_ms();
    /// nodes[0].advance(std::time::Duration::from_secs(60));
    /// assert!(nodes[2].now_ms() - before >= 60_000);
    /// ```
    pub fn with_clock(clock: Clock) -> Self {
        MockBackend {
            node: Arc::new_cyclic(|me| Node::new(clock, me.clone())),
        }
    }

    /// The node's clock (shared by its clones and by nodes made
    /// [`with_clock`](Self::with_clock) from it).
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// use std::time::Duration;
    /// let redis = MockBackend::new();
    /// redis.time().advance(Duration::from_secs(1));
    /// assert_eq!(redis.time().advanced(), Duration::from_secs(1));
    /// ```
    pub fn time(&self) -> Clock {
        self.node.time.clone()
    }

    /// Whether `self` and `other` are handles to the same node.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// assert!(redis.is_same_node(&redis.clone()));
    /// assert!(!redis.is_same_node(&MockBackend::new()));
    /// ```
    pub fn is_same_node(&self, other: &MockBackend) -> bool {
        Arc::ptr_eq(&self.node, &other.node)
    }

    /// The node's clock in milliseconds since the Unix epoch: the wall-clock
    /// time when the node was created, plus the (monotonic) time elapsed
    /// since, plus every [`advance`](Self::advance). Key expiry and `TIME`
    /// in scripts use this clock.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// let redis = MockBackend::new();
    /// let before = redis.now_ms();
    /// redis.advance(std::time::Duration::from_millis(250));
    /// assert!(redis.now_ms() - before >= 250);
    /// ```
    pub fn now_ms(&self) -> i64 {
        self.node.lock().clock.now_ms()
    }

    /// Moves the node's clock forward by `by`, so keys expire without the
    /// test sleeping, and so do redsem's own timers for locks on this node:
    /// refresh ticks, loss detection, acquire retries and timeouts, call
    /// bounds fire as they fall due, in order, and `advance` returns once
    /// that work has settled (see [`Clock::advance`]). A key with a TTL of
    /// `t` is gone once the clock has moved `t` past the moment its TTL was
    /// set. Injected latency stays real time.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// use std::time::Duration;
    /// let redis = MockBackend::new();
    /// redis.set_with_ttl("k", "v", Duration::from_secs(5));
    /// redis.advance(Duration::from_secs(5));
    /// assert!(!redis.exists("k")); // expired, without sleeping
    /// ```
    pub fn advance(&self, by: Duration) {
        self.node.time.advance(by);
    }

    /// Empties the script cache (`SCRIPT FLUSH`): the next `EVALSHA` of each
    /// script answers `NOSCRIPT`. Like Redis, the node also starts a new Lua
    /// state.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::Mutex;
    /// # futures::executor::block_on(async {
    /// # use redsem_core::Mutex;
    /// let redis = MockBackend::new();
    /// Mutex::new(redis.clone(), "jobs")?.acquire().await?.release().await?;
    /// assert!(redis.is_script_loaded(&redsem_core::script::MUTEX_RELEASE));
    /// redis.flush_scripts();
    /// assert!(!redis.is_script_loaded(&redsem_core::script::MUTEX_RELEASE));
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn flush_scripts(&self) {
        self.node.lock().scripts.clear();
    }

    /// Whether `script` is in the node's script cache (it was loaded by
    /// `EVAL` since the node was created, restarted or its scripts flushed).
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::Mutex;
    /// # futures::executor::block_on(async {
    /// # use redsem_core::Mutex;
    /// let redis = MockBackend::new();
    /// assert!(!redis.is_script_loaded(&redsem_core::script::MUTEX_RELEASE));
    /// Mutex::new(redis.clone(), "jobs")?.acquire().await?.release().await?;
    /// assert!(redis.is_script_loaded(&redsem_core::script::MUTEX_RELEASE));
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn is_script_loaded(&self, script: &Script) -> bool {
        self.node.lock().scripts.contains(script.sha1())
    }

    /// Backend calls made on this node so far, failed ones included.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::Mutex;
    /// # futures::executor::block_on(async {
    /// # use redsem_core::Mutex;
    /// let redis = MockBackend::new();
    /// Mutex::new(redis.clone(), "jobs")?.acquire().await?.release().await?;
    /// assert!(redis.calls() >= 2); // an acquire and a release
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn calls(&self) -> u64 {
        self.node.lock().stats.calls
    }

    /// Successful executions of the script named `name` (such as
    /// `"mutex_release"`), by `EVALSHA` or `EVAL`; native
    /// [`set_nx_px`](RedisBackend::set_nx_px) calls count under
    /// `"set_nx_px"`. A `NOSCRIPT` answer or any other error is not counted.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::Mutex;
    /// # futures::executor::block_on(async {
    /// # use redsem_core::Mutex;
    /// let redis = MockBackend::new();
    /// Mutex::new(redis.clone(), "jobs")?.acquire().await?.release().await?;
    /// assert_eq!(redis.script_calls("mutex_release"), 1);
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn script_calls(&self, name: &str) -> u64 {
        self.node
            .lock()
            .stats
            .executions
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Pretends the node has `replicas` replicas that acknowledge every
    /// write at once: [`wait_for_replicas`](RedisBackend::wait_for_replicas)
    /// answers with this count (0 by default, a node without replicas).
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::RedisBackend;
    /// # futures::executor::block_on(async {
    /// let redis = MockBackend::new();
    /// assert_eq!(redis.wait_for_replicas("k", 1, 10).await?, 0);
    /// redis.set_replicas(2);
    /// assert_eq!(redis.wait_for_replicas("k", 1, 10).await?, 2);
    /// # Ok::<(), redsem_core::BackendError>(())
    /// # }).unwrap();
    /// ```
    pub fn set_replicas(&self, replicas: u32) {
        self.node.lock().replicas = replicas;
    }

    /// Sets [`calls`](Self::calls) and every
    /// [`script_calls`](Self::script_calls) back to zero.
    ///
    /// ```
    /// # use redsem_mock::MockBackend;
    /// # use redsem_core::Mutex;
    /// # futures::executor::block_on(async {
    /// # use redsem_core::Mutex;
    /// let redis = MockBackend::new();
    /// Mutex::new(redis.clone(), "jobs")?.acquire().await?.release().await?;
    /// redis.reset_stats();
    /// assert_eq!((redis.calls(), redis.script_calls("mutex_release")), (0, 0));
    /// # Ok::<(), redsem_core::LockError>(())
    /// # }).unwrap();
    /// ```
    pub fn reset_stats(&self) {
        let mut state = self.node.lock();
        state.stats.calls = 0;
        state.stats.executions.clear();
    }
}

impl Default for MockBackend {
    fn default() -> Self {
        MockBackend::new()
    }
}

/// A summary of the node (never its data).
impl fmt::Debug for MockBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.node.lock();
        f.debug_struct("MockBackend")
            .field("node", &Arc::as_ptr(&self.node))
            .field("keys", &state.data.len())
            .field("cached_scripts", &state.scripts.len())
            .field("now_ms", &state.clock.now_ms())
            .field("calls", &state.stats.calls)
            .field("down", &state.faults.down)
            .field("hung", &state.faults.is_hung())
            .field("latency", &state.faults.latency)
            .field("pending_failures", &state.faults.fail_next)
            .finish()
    }
}

/// Redis semantics for any script: its Lua source runs in the node's
/// embedded Lua 5.1 with `redis.call` reaching the node's keys (see the
/// [crate documentation](crate) for the commands implemented), and
/// `set_nx_px` is a native `SET NX PX`.
#[async_trait]
impl RedisBackend for MockBackend {
    /// `EVALSHA`: answers `NOSCRIPT` ([`BackendErrorKind::NoScript`]) unless
    /// the script was loaded on this node by [`eval`](RedisBackend::eval).
    ///
    /// [`BackendErrorKind::NoScript`]: redsem_core::BackendErrorKind::NoScript
    async fn eval_sha(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        self.node
            .call(|state, now| state.run_script(script, keys, args, now))
            .await
    }

    /// `EVAL`: compiles the script into the node's cache (a script that does
    /// not compile is an error and is not cached) and runs it.
    async fn eval(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
    ) -> Result<Reply, BackendError> {
        self.node
            .call(|state, now| {
                state.scripts.load(script)?;
                state.run_script(script, keys, args, now)
            })
            .await
    }

    /// This node's identity (its clones share it; every `new()` node has its
    /// own), so Redlock can tell two handles to one node apart from two
    /// nodes. Not a backend call: no faults, not counted.
    fn clock(&self) -> Clock {
        self.node.time.clone()
    }

    /// The node's release notifications: its scripts' `PUBLISH` reaches the
    /// channels subscribed through it, so waiters on a mock are woken as on
    /// Redis. Subscribing is a call to the node (faults apply); going down
    /// or restarting drops the subscriptions.
    fn notifications(&self) -> Option<&redsem_core::Notifications> {
        Some(&self.node.notifications)
    }

    async fn server_id(&self) -> Result<Option<String>, BackendError> {
        Ok(Some(format!("mock-node-{:p}", Arc::as_ptr(&self.node))))
    }

    /// `WAIT`: answers at once with [`set_replicas`](MockBackend::set_replicas)'
    /// count (faults apply, as to any call).
    async fn wait_for_replicas(
        &self,
        _key: &str,
        _replicas: u32,
        _timeout_ms: u64,
    ) -> Result<u32, BackendError> {
        self.node.call(|state, _| Ok(state.replicas)).await
    }

    /// `SET key value PX ttl_ms NX` as one native command; a `ttl_ms` of 0
    /// is an error, as in Redis.
    async fn set_nx_px(&self, key: &str, value: &str, ttl_ms: u64) -> Result<bool, BackendError> {
        let argv = [
            b"SET".to_vec(),
            key.as_bytes().to_vec(),
            value.as_bytes().to_vec(),
            b"PX".to_vec(),
            ttl_ms.to_string().into_bytes(),
            b"NX".to_vec(),
        ];
        self.node
            .call(|state, now| {
                let set = match commands::execute(&mut state.data, now, &argv) {
                    Resp::Status(_) => true,
                    Resp::Nil => false,
                    Resp::Error(message) => return Err(BackendError::server_reply(message)),
                    other => {
                        return Err(BackendError::server_reply(format!(
                            "ERR mock: unexpected SET reply {other:?}"
                        )))
                    }
                };
                state.stats.executed("set_nx_px");
                Ok(set)
            })
            .await
    }
}
