//! Bounded polling and plain reads on real redis-servers, for tests that
//! wait for a server-side state (replication, a failover, a release).

use std::error::Error;
use std::thread;
use std::time::{Duration, Instant};

use redsem_testing::{RedisServer, RespValue};

/// Polls `condition` every 10 ms until it holds; fails after `timeout`
/// with `what`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> Result<bool, Box<dyn Error>>,
) -> Result<(), Box<dyn Error>> {
    let deadline = Instant::now() + timeout;
    while !condition()? {
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}").into());
        }
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// `GET key` on `server`.
pub fn get(server: &RedisServer, key: &str) -> Result<Option<String>, Box<dyn Error>> {
    Ok(match server.command(&["GET", key])? {
        RespValue::Nil => None,
        reply => Some(reply.as_str().ok_or("GET answered no string")?.to_owned()),
    })
}
