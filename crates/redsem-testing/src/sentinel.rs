//! [`RedisSentinel`]: a primary, a replica and three Sentinels watching them.

use std::thread;
use std::time::{Duration, Instant};

use crate::error::TestingError;
use crate::resp::RespValue;
use crate::server::{expect_ok, RedisServer};
use crate::util::POLL_INTERVAL;

/// The name the Sentinels know the primary by.
const SERVICE: &str = "redsem";
/// How many Sentinels watch the primary; a majority of them is the quorum.
const SENTINELS: usize = 3;
/// Upper bound for the replica to sync and the Sentinels to find each other
/// and the replica (they announce themselves every 2 s).
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for a failover to be agreed on by every Sentinel.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);

/// Arguments of both data nodes (either may become the primary): a replica's
/// full sync starts at once instead of after `repl-diskless-sync-delay`.
const DATA_ARGS: [&str; 2] = ["--repl-diskless-sync-delay", "0"];

/// A private Sentinel-managed Redis: a primary, one replica and three
/// Sentinels (`redis-server --sentinel`), all on free loopback ports.
///
/// The Sentinels monitor the primary as `"redsem"` with a quorum of 2,
/// `down-after-milliseconds 1000` and `failover-timeout 5000`, so a crashed
/// primary is replaced within a few seconds; [`failover`](Self::failover)
/// forces one at once. Dropping the handle stops all five servers (so does
/// an error while starting: the ones started so far are dropped).
///
/// Which data node is the primary changes with failovers: ask
/// [`primary`](Self::primary). Note that Sentinel demotes a primary that is
/// still running only about 10 s after failing it over; until then both
/// nodes answer as primaries.
///
/// ```no_run
/// use redsem_testing::RedisSentinel;
///
/// # fn main() -> Result<(), redsem_testing::TestingError> {
/// let deployment = RedisSentinel::start()?;
/// let urls = deployment.sentinel_urls(); // for the client under test
/// let old = deployment.primary()?.port();
/// let new = deployment.failover()?;
/// assert_ne!(new.port(), old);
/// # let _ = urls;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RedisSentinel {
    /// The two data nodes, the first started as the primary.
    nodes: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
}

impl RedisSentinel {
    /// Starts the primary, its replica and the Sentinels, and returns once
    /// the replica is in sync and every Sentinel knows the replica and the
    /// other Sentinels (a few seconds), so a failover can start at once.
    pub fn start() -> Result<RedisSentinel, TestingError> {
        let primary = RedisServer::start_with(&DATA_ARGS)?;
        let port = primary.port().to_string();
        let mut replica_args = DATA_ARGS.to_vec();
        replica_args.extend(["--replicaof", "127.0.0.1", &port]);
        let replica = RedisServer::start_with(&replica_args)?;
        let monitor = [
            ["--sentinel", "monitor", SERVICE, "127.0.0.1", &port, "2"].as_slice(),
            &["--sentinel", "down-after-milliseconds", SERVICE, "1000"],
            &["--sentinel", "failover-timeout", SERVICE, "5000"],
        ]
        .concat();
        let mut sentinels = Vec::with_capacity(SENTINELS);
        for _ in 0..SENTINELS {
            sentinels.push(RedisServer::launch_sentinel(&monitor)?);
        }
        let deployment = RedisSentinel {
            nodes: vec![primary, replica],
            sentinels,
        };
        deployment.wait_until_ready(READY_TIMEOUT)?;
        Ok(deployment)
    }

    /// The name the Sentinels know the primary by (`"redsem"`).
    pub fn service_name(&self) -> &'static str {
        SERVICE
    }

    /// The Sentinels, e.g. to send them `SENTINEL` commands.
    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    /// `redis://127.0.0.1:<port>` of every Sentinel.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisServer::url).collect()
    }

    /// The two data nodes, in start order (the first started as primary).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Mutable data node handles, to stop or pause one.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// The data node the first Sentinel names as the primary.
    pub fn primary(&self) -> Result<&RedisServer, TestingError> {
        self.named_by(&self.sentinels[0])
    }

    /// Forces a failover (`SENTINEL FAILOVER` on the first Sentinel) and
    /// returns the new primary once every Sentinel names it and it answers
    /// `ROLE` as a primary (about 2 s). The old primary stays up; Sentinel
    /// demotes it to a replica of the new one some 10 s later.
    pub fn failover(&self) -> Result<&RedisServer, TestingError> {
        let old = self.primary()?.port();
        let args = ["SENTINEL", "FAILOVER", SERVICE];
        expect_ok(&args, self.sentinels[0].command(&args)?)?;
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        loop {
            let new = self.agreed_primary()?;
            let promoted =
                |n: &&RedisServer| n.port() != old && role(n).is_ok_and(|r| r == "master");
            if let Some(node) = new.filter(promoted) {
                return Ok(node);
            }
            if Instant::now() >= deadline {
                return Err(TestingError::Timeout {
                    what: format!("every Sentinel to name a primary other than port {old}"),
                    after: FAILOVER_TIMEOUT,
                });
            }
            thread::sleep(POLL_INTERVAL * 5);
        }
    }

    /// Waits, bounded by `timeout`, until exactly one data node is a primary
    /// and the other a replica in sync with it, and every Sentinel names that
    /// primary, sees it up, knows the replica and the other Sentinels.
    pub fn wait_until_ready(&self, timeout: Duration) -> Result<(), TestingError> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.not_ready() {
                Ok(None) => return Ok(()),
                Ok(Some(why)) => why,
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(TestingError::Timeout {
                    what: format!("the Sentinel deployment to be ready; last: {last}"),
                    after: timeout,
                });
            }
            thread::sleep(POLL_INTERVAL * 5);
        }
    }

    /// What is not ready yet, if anything.
    fn not_ready(&self) -> Result<Option<String>, TestingError> {
        let Some(primary) = self.agreed_primary()? else {
            return Ok(Some("the Sentinels name different primaries".into()));
        };
        for node in &self.nodes {
            let info = node.command(&["INFO", "replication"])?;
            let text = info.as_str().unwrap_or("");
            let ready = if node.port() == primary.port() {
                text.contains("role:master") && text.contains("connected_slaves:1")
            } else {
                text.contains("role:slave") && text.contains("master_link_status:up")
            };
            if !ready {
                return Ok(Some(format!("node {}: {text}", node.port())));
            }
        }
        for sentinel in &self.sentinels {
            let reply = sentinel.command(&["SENTINEL", "MASTER", SERVICE])?;
            let state = |field| field_of(&reply, field).unwrap_or_default();
            let other_sentinels = (SENTINELS - 1).to_string();
            if state("flags") != "master"
                || state("num-slaves") != "1"
                || state("num-other-sentinels") != other_sentinels
            {
                return Ok(Some(format!("sentinel {}: {reply}", sentinel.port())));
            }
        }
        Ok(None)
    }

    /// The primary every Sentinel names, or `None` while they disagree.
    fn agreed_primary(&self) -> Result<Option<&RedisServer>, TestingError> {
        let first = self.named_by(&self.sentinels[0])?;
        for sentinel in &self.sentinels[1..] {
            if self.named_by(sentinel)?.port() != first.port() {
                return Ok(None);
            }
        }
        Ok(Some(first))
    }

    /// The data node `sentinel` names as the primary.
    fn named_by(&self, sentinel: &RedisServer) -> Result<&RedisServer, TestingError> {
        let args = ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE];
        let reply = sentinel.command(&args)?;
        let port = reply
            .as_array()
            .and_then(|addr| addr.get(1))
            .and_then(RespValue::as_str)
            .and_then(|port| port.parse::<u16>().ok());
        self.nodes
            .iter()
            .find(|node| Some(node.port()) == port)
            .ok_or_else(|| TestingError::UnexpectedReply {
                command: args.join(" "),
                reply: reply.to_string(),
            })
    }
}

/// The first field of `ROLE`: `master` or `slave`.
fn role(node: &RedisServer) -> Result<String, TestingError> {
    let reply = node.command(&["ROLE"])?;
    reply
        .as_array()
        .and_then(|fields| fields.first())
        .and_then(RespValue::as_str)
        .map(str::to_owned)
        .ok_or_else(|| TestingError::UnexpectedReply {
            command: "ROLE".into(),
            reply: reply.to_string(),
        })
}

/// The value of `field` in a flat `[name, value, ...]` reply.
fn field_of(reply: &RespValue, field: &str) -> Option<String> {
    reply
        .as_array()?
        .chunks(2)
        .find(|pair| pair[0].as_str() == Some(field))
        .and_then(|pair| pair.get(1)?.as_str().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_flat_replies() {
        let bulk = |s: &str| RespValue::Bulk(s.as_bytes().to_vec());
        let reply = RespValue::Array(vec![bulk("name"), bulk("redsem"), bulk("flags")]);
        assert_eq!(field_of(&reply, "name").as_deref(), Some("redsem"));
        assert_eq!(field_of(&reply, "flags"), None);
        assert_eq!(field_of(&RespValue::Nil, "name"), None);
    }
}
