//! [`Node`] over `redsem-mock`.

use std::sync::Arc;

use redsem_core::{Clock, RedisBackend};
use redsem_mock::MockBackend;

use super::node::{Env, Node};
use super::time::Time;

pub struct MockNode(pub MockBackend);

impl Node for MockNode {
    fn backend(&self) -> Arc<dyn RedisBackend> {
        Arc::new(self.0.clone())
    }
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key)
    }
    fn set(&self, key: &str, value: &str) {
        self.0.set(key, value)
    }
    fn del(&self, key: &str) {
        self.0.del(key);
    }
    fn zrange(&self, key: &str) -> Vec<String> {
        self.0.zrange(key)
    }
    fn zrange_with_scores(&self, key: &str) -> Vec<(String, i64)> {
        self.0.zrange_with_scores(key)
    }
    fn zadd(&self, key: &str, score: i64, member: &str) {
        self.0.zadd(key, score, member);
    }
    fn pttl(&self, key: &str) -> i64 {
        match (self.0.exists(key), self.0.ttl(key)) {
            (false, _) => -2,
            (true, None) => -1,
            (true, Some(d)) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        }
    }
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
    fn flush_scripts(&self) {
        self.0.flush_scripts()
    }
    fn stop(&self) {
        self.0.go_down()
    }
    fn start(&self) {
        self.0.restart()
    }
    fn pause(&self) {
        self.0.hang()
    }
    fn resume(&self) {
        self.0.unhang()
    }
}

/// `n` separate mock nodes on one manual clock, whose scenario sleeps for
/// real (the clock follows real time too): for any executor.
pub fn mock_env(n: usize) -> Env {
    Env {
        nodes: mock_nodes(n, &Clock::manual()),
        mock: true,
        time: Time::Real,
    }
}

/// `n` separate mock nodes on one manual clock that the scenario's time
/// follows: run the scenario with `env.time.block_on`, which moves the
/// clock whenever the scenario waits.
pub fn virtual_mock_env(n: usize) -> Env {
    let clock = Clock::manual();
    Env {
        nodes: mock_nodes(n, &clock),
        mock: true,
        time: Time::virtual_on(clock),
    }
}

fn mock_nodes(n: usize, clock: &Clock) -> Vec<Arc<dyn Node>> {
    (0..n)
        .map(|_| Arc::new(MockNode(MockBackend::with_clock(clock.clone()))) as Arc<dyn Node>)
        .collect()
}
