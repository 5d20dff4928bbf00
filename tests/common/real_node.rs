//! [`Node`] over a private `redis-server` started by `redsem-testing`.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use redsem_core::RedisBackend;
use redsem_testing::{RedisServer, RespValue};

use super::node::{Env, Node};
use super::time::Time;

pub struct RealNode {
    server: Mutex<RedisServer>,
    backend: Arc<dyn RedisBackend>,
}

impl RealNode {
    fn server(&self) -> MutexGuard<'_, RedisServer> {
        self.server.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cmd(&self, args: &[&str]) -> RespValue {
        let reply = self.server().command(args);
        match reply {
            Ok(RespValue::Error(e)) => panic!("{args:?} failed: {e}"),
            Ok(v) => v,
            Err(e) => panic!("{args:?} failed: {e}"),
        }
    }
}

fn strings(v: &RespValue) -> Vec<String> {
    v.as_array()
        .unwrap_or_default()
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_owned())
        .collect()
}

impl Node for RealNode {
    fn backend(&self) -> Arc<dyn RedisBackend> {
        self.backend.clone()
    }
    fn get(&self, key: &str) -> Option<String> {
        self.cmd(&["GET", key]).as_str().map(str::to_owned)
    }
    fn set(&self, key: &str, value: &str) {
        self.cmd(&["SET", key, value]);
    }
    fn del(&self, key: &str) {
        self.cmd(&["DEL", key]);
    }
    fn zrange(&self, key: &str) -> Vec<String> {
        strings(&self.cmd(&["ZRANGE", key, "0", "-1"]))
    }
    fn zrange_with_scores(&self, key: &str) -> Vec<(String, i64)> {
        let flat = strings(&self.cmd(&["ZRANGE", key, "0", "-1", "WITHSCORES"]));
        flat.chunks(2)
            .map(|p| {
                (
                    p[0].clone(),
                    p[1].parse::<f64>().expect("numeric score") as i64,
                )
            })
            .collect()
    }
    fn zadd(&self, key: &str, score: i64, member: &str) {
        self.cmd(&["ZADD", key, &score.to_string(), member]);
    }
    fn pttl(&self, key: &str) -> i64 {
        self.cmd(&["PTTL", key])
            .as_integer()
            .expect("PTTL answers an integer")
    }
    fn now_ms(&self) -> i64 {
        let t = strings(&self.cmd(&["TIME"]));
        let secs: i64 = t[0].parse().expect("seconds");
        let micros: i64 = t[1].parse().expect("micros");
        secs * 1000 + micros / 1000
    }
    fn flush_scripts(&self) {
        self.cmd(&["SCRIPT", "FLUSH"]);
    }
    fn stop(&self) {
        self.server().stop().expect("stop redis-server");
    }
    fn start(&self) {
        self.server().start_again().expect("restart redis-server");
    }
    fn pause(&self) {
        self.server().pause().expect("SIGSTOP redis-server");
    }
    fn resume(&self) {
        self.server().resume().expect("SIGCONT redis-server");
    }
}

/// Starts a private redis-server; a missing binary fails the test with
/// install instructions.
pub fn start_server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("{e}"))
}

/// `n` private redis-servers, each connected through `connect(url)`.
pub async fn real_env<F, Fut>(n: usize, connect: F) -> Env
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Arc<dyn RedisBackend>>,
{
    let mut nodes: Vec<Arc<dyn Node>> = Vec::with_capacity(n);
    for _ in 0..n {
        let server = start_server();
        let backend = connect(server.url()).await;
        nodes.push(Arc::new(RealNode {
            server: Mutex::new(server),
            backend,
        }));
    }
    Env {
        nodes,
        mock: false,
        time: Time::Real,
    }
}
