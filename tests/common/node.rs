//! One interface over a mock node and a real redis-server, so a scenario is
//! written once and runs on every backend.

use std::sync::Arc;

use redsem_core::RedisBackend;

use super::time::Time;

/// A Redis node a scenario can inspect and break. Inspection is synchronous
/// and bypasses the backend under test.
pub trait Node: Send + Sync {
    /// The backend under test, connected to this node.
    fn backend(&self) -> Arc<dyn RedisBackend>;
    /// `GET key`.
    fn get(&self, key: &str) -> Option<String>;
    /// `SET key value`.
    fn set(&self, key: &str, value: &str);
    /// `DEL key`.
    fn del(&self, key: &str);
    /// `ZRANGE key 0 -1` (by score, then member).
    fn zrange(&self, key: &str) -> Vec<String>;
    /// `ZRANGE key 0 -1 WITHSCORES`.
    fn zrange_with_scores(&self, key: &str) -> Vec<(String, i64)>;
    /// `ZADD key score member`.
    fn zadd(&self, key: &str, score: i64, member: &str);
    /// `PTTL key`: -2 when missing, -1 without expiry.
    fn pttl(&self, key: &str) -> i64;
    /// The node's clock (`TIME`) in epoch milliseconds.
    fn now_ms(&self) -> i64;
    /// `SCRIPT FLUSH`.
    fn flush_scripts(&self);
    /// Crash: connections are refused until `start`.
    fn stop(&self);
    /// Start again after `stop`, with no data (no persistence).
    fn start(&self);
    /// Freeze (SIGSTOP): connections hang until `resume`.
    fn pause(&self);
    /// Thaw after `pause`.
    fn resume(&self);
}

/// The nodes of one scenario; single-node scenarios use the first.
pub struct Env {
    pub nodes: Vec<Arc<dyn Node>>,
    /// Whether the nodes are `redsem-mock` (some checks need real servers or
    /// mock-only controls).
    pub mock: bool,
    /// How the scenario lets time pass: real, or the mock nodes' shared
    /// virtual clock.
    pub time: Time,
}

impl Env {
    pub fn node(&self) -> &dyn Node {
        &*self.nodes[0]
    }

    pub fn backend(&self) -> Arc<dyn RedisBackend> {
        self.nodes[0].backend()
    }

    pub fn backends(&self) -> Vec<Arc<dyn RedisBackend>> {
        self.nodes.iter().map(|n| n.backend()).collect()
    }
}
