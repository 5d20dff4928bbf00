//! One node's state behind one lock, and the path every backend call takes
//! through the injected faults.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, Weak};

use async_trait::async_trait;

use redsem_core::{
    Arg, BackendError, BackendErrorKind, Channels, Notifications, Reply, Script, Subscriber,
};

use crate::clock::EpochClock;
use crate::data::Keyspace;
use crate::faults::Faults;
use crate::lua::Scripts;

/// Call statistics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Backend calls, failed ones included.
    pub(crate) calls: u64,
    /// Successful executions per script name (`set_nx_px` included).
    pub(crate) executions: HashMap<&'static str, u64>,
}

impl Stats {
    pub(crate) fn executed(&mut self, name: &'static str) {
        *self.executions.entry(name).or_default() += 1;
    }
}

/// Everything a node holds; guarded by the node's single lock, so every
/// command and script runs atomically.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) data: Keyspace,
    /// The scripts loaded by `EVAL` (the script cache) and the Lua state
    /// that runs them.
    pub(crate) scripts: Scripts,
    pub(crate) clock: EpochClock,
    pub(crate) faults: Faults,
    pub(crate) stats: Stats,
    /// Channels the node's notification hub subscribed to.
    pub(crate) subscribed: HashSet<Vec<u8>>,
    /// Replicas that acknowledge every write at once (`WAIT`'s answer).
    pub(crate) replicas: u32,
}

impl State {
    /// Takes what the last command published to a subscribed channel.
    fn deliveries(&mut self) -> Vec<Vec<u8>> {
        let published = std::mem::take(&mut self.data.outbox);
        published
            .into_iter()
            .filter(|channel| self.subscribed.contains(channel))
            .collect()
    }

    /// The subscriber connection is gone (the node went down or restarted).
    pub(crate) fn drop_subscriptions(&mut self) -> bool {
        let had = !self.subscribed.is_empty();
        self.subscribed.clear();
        had
    }
}

impl State {
    /// Runs `script` from the script cache (`NOSCRIPT` when it is not
    /// there) and counts it when it succeeds.
    pub(crate) fn run_script(
        &mut self,
        script: &Script,
        keys: &[&str],
        args: &[Arg<'_>],
        now: i64,
    ) -> Result<Reply, BackendError> {
        let reply = self
            .scripts
            .run(script.sha1(), &mut self.data, now, keys, args)
            .unwrap_or_else(|| Err(no_script()))?;
        self.stats.executed(script.name());
        Ok(reply)
    }
}

/// Redis's answer to `EVALSHA` of a script it does not have.
fn no_script() -> BackendError {
    BackendError::new(
        BackendErrorKind::NoScript,
        "NOSCRIPT No matching script. Please use EVAL.",
    )
}

/// One in-memory Redis server.
#[derive(Debug)]
pub(crate) struct Node {
    state: Mutex<State>,
    /// The time the node and redsem's timers for its locks follow; kept
    /// outside the lock, because advancing it runs redsem's timers, which
    /// call the node.
    pub(crate) time: redsem_core::Clock,
    /// Release notifications: its subscriptions live in `State::subscribed`,
    /// reached through the calls (and faults) of any other client.
    pub(crate) notifications: Notifications,
}

/// The mock's subscriber connection.
#[derive(Debug)]
struct MockSubscriber(Weak<Node>);

impl MockSubscriber {
    async fn set(&self, channel: &str, on: bool) -> Result<(), BackendError> {
        let Some(node) = self.0.upgrade() else {
            return Err(BackendError::new(
                BackendErrorKind::Connection,
                "node dropped",
            ));
        };
        node.call(|state, _| {
            let channel = channel.as_bytes().to_vec();
            if on {
                state.subscribed.insert(channel);
            } else {
                state.subscribed.remove(&channel);
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Subscriber for MockSubscriber {
    async fn subscribe(&self, channel: &str) -> Result<(), BackendError> {
        self.set(channel, true).await
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), BackendError> {
        self.set(channel, false).await
    }
}

impl Node {
    pub(crate) fn new(time: redsem_core::Clock, me: Weak<Node>) -> Self {
        let state = State {
            data: Keyspace::default(),
            scripts: Scripts::default(),
            clock: EpochClock::new(time.clone()),
            faults: Faults::default(),
            stats: Stats::default(),
            subscribed: HashSet::new(),
            replicas: 0,
        };
        Node {
            state: Mutex::new(state),
            time,
            notifications: Notifications::new(Channels::Global, MockSubscriber(me)),
        }
    }

    /// The state; a lock poisoned by a panicking test thread is recovered
    /// (every operation leaves the state consistent before it can panic).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One backend call: counts it, fails at once while the node is down,
    /// waits out the first half of the latency (the request on the wire) and
    /// any hang, then (unless the node went down meanwhile or a failure is
    /// injected) runs `op` under the lock with the node's current time, and
    /// waits the second half (the reply on the wire).
    ///
    /// Dropping the future before `op` runs means the command never runs;
    /// dropping it during the second half loses only the reply, like a real
    /// client whose command reached the server.
    pub(crate) async fn call<T>(
        &self,
        op: impl FnOnce(&mut State, i64) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let latency = {
            let mut state = self.lock();
            state.stats.calls += 1;
            state.faults.check_up()?;
            state.faults.latency
        };
        let request = latency / 2;
        if !request.is_zero() {
            async_io::Timer::after(request).await;
        }
        let result = self.run_when_not_hung(op).await;
        let reply = latency - request;
        if !reply.is_zero() {
            async_io::Timer::after(reply).await;
        }
        result
    }

    async fn run_when_not_hung<T>(
        &self,
        op: impl FnOnce(&mut State, i64) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        loop {
            let gate = {
                let mut state = self.lock();
                match state.faults.hang_gate() {
                    Some(gate) => gate,
                    None => {
                        state.faults.check_up()?;
                        state.faults.take_injected()?;
                        let now = state.clock.now_ms();
                        let result = op(&mut state, now);
                        let deliveries = state.deliveries();
                        drop(state);
                        for channel in deliveries {
                            self.notifications.notify(&channel);
                        }
                        return result;
                    }
                }
            };
            // Resolves (with `Canceled`) once `unhang` drops the sender.
            let _ = gate.await;
        }
    }
}
