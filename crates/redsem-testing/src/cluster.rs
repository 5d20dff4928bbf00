//! [`RedisCluster`]: a private Redis Cluster of masters without replicas.

use std::fs::File;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::TestingError;
use crate::resp::RespValue;
use crate::server::{expect_ok, RedisServer};
use crate::util::{self, POLL_INTERVAL};

/// Number of hash slots in Redis Cluster.
const SLOTS: usize = 16384;
/// Upper bound for `redis-cli --cluster create`.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for the cluster to converge after creation.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// A sanity limit; tests never need more nodes than this.
const MAX_MASTERS: usize = 32;

/// A private Redis Cluster: `masters` nodes on free loopback ports, each
/// owning a contiguous share of the 16384 slots, no replicas.
///
/// Nodes use `--cluster-node-timeout 2000`, and each gets a free bus port of
/// its own (`--cluster-port`), so clusters never collide with each other or
/// with anything using `port + 10000`. Dropping the handle stops all nodes.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` nodes and joins them into a cluster; returns once
    /// every node reports `cluster_state:ok` with all slots assigned (about
    /// 2 s). Three or more masters are joined with `redis-cli --cluster create`
    /// (which refuses fewer); one or two are joined with `CLUSTER ADDSLOTSRANGE`
    /// and `CLUSTER MEET`.
    pub fn start(masters: usize) -> Result<RedisCluster, TestingError> {
        if masters == 0 || masters > MAX_MASTERS {
            return Err(TestingError::InvalidArgument(format!(
                "a test cluster needs 1..={MAX_MASTERS} masters, not {masters}"
            )));
        }
        // Look for redis-cli before starting anything, to fail fast.
        let cli = if masters >= 3 {
            Some(util::find_program("redis-cli", "redis-tools")?)
        } else {
            None
        };
        let mut nodes = Vec::with_capacity(masters);
        for _ in 0..masters {
            // On error, the nodes started so far are dropped, i.e. stopped.
            nodes.push(RedisServer::launch(&[], true)?);
        }
        let cluster = RedisCluster { nodes };
        match cli {
            Some(cli) => cluster.create_with_redis_cli(&cli)?,
            None => cluster.create_manually()?,
        }
        cluster.wait_until_ready(READY_TIMEOUT)?;
        Ok(cluster)
    }

    fn create_with_redis_cli(&self, cli: &std::path::Path) -> Result<(), TestingError> {
        // Output goes to a file (not a pipe) so a chatty redis-cli can never
        // block, and we can still poll it with a deadline.
        let out_path = self.nodes[0].dir().join("redis-cli-create.log");
        let out = File::create(&out_path)
            .map_err(|e| TestingError::io(format!("creating {}", out_path.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| TestingError::io("duplicating a file handle", e))?;
        let mut child = Command::new(cli)
            .arg("--cluster")
            .arg("create")
            .args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| TestingError::io("running redis-cli --cluster create", e))?;
        let deadline = Instant::now() + CREATE_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let output = util::log_tail(&out_path, 30);
        match status {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(TestingError::ClusterSetup(format!(
                "redis-cli --cluster create exited with {status}:\n{output}"
            ))),
            None => Err(TestingError::Timeout {
                what: format!("redis-cli --cluster create; output so far:\n{output}"),
                after: CREATE_TIMEOUT,
            }),
        }
    }

    fn create_manually(&self) -> Result<(), TestingError> {
        let n = self.nodes.len();
        for (i, node) in self.nodes.iter().enumerate() {
            let first = (i * SLOTS / n).to_string();
            let last = ((i + 1) * SLOTS / n - 1).to_string();
            let epoch = (i + 1).to_string();
            for args in [
                &["CLUSTER", "ADDSLOTSRANGE", &first, &last][..],
                &["CLUSTER", "SET-CONFIG-EPOCH", &epoch][..],
            ] {
                expect_ok(args, node.command(args)?)?;
            }
        }
        let first = &self.nodes[0];
        for node in &self.nodes[1..] {
            let port = node.port().to_string();
            let bus = node.bus_port().unwrap_or(0).to_string();
            let args = ["CLUSTER", "MEET", "127.0.0.1", &port, &bus];
            expect_ok(&args, first.command(&args)?)?;
        }
        Ok(())
    }

    /// Waits, bounded by `timeout`, until every node reports
    /// `cluster_state:ok`, all 16384 slots assigned and knows every node.
    /// Useful again after restarting or resuming a node.
    pub fn wait_until_ready(&self, timeout: Duration) -> Result<(), TestingError> {
        let deadline = Instant::now() + timeout;
        let known = self.nodes.len().to_string();
        let slots = SLOTS.to_string();
        let wanted = [
            ("cluster_state", "ok"),
            ("cluster_slots_assigned", slots.as_str()),
            ("cluster_known_nodes", known.as_str()),
        ];
        loop {
            let mut not_ready = None;
            for node in &self.nodes {
                let info = node.command(&["CLUSTER", "INFO"]);
                let text = info.as_ref().ok().and_then(RespValue::as_str).unwrap_or("");
                let ok = wanted.iter().all(|(field, value)| {
                    text.lines().any(|l| l.trim() == format!("{field}:{value}"))
                });
                if !ok {
                    not_ready = Some(match &info {
                        Ok(reply) => format!("node {}: {reply}", node.port()),
                        Err(e) => format!("node {}: {e}", node.port()),
                    });
                    break;
                }
            }
            let Some(last) = not_ready else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(TestingError::Timeout {
                    what: format!("the cluster to be ready; last CLUSTER INFO: {last}"),
                    after: timeout,
                });
            }
            thread::sleep(POLL_INTERVAL * 2);
        }
    }

    /// The node handles, in start order.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Mutable node handles, to stop, pause or restart single nodes.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// `redis://127.0.0.1:<port>` of every node (any of them works as a
    /// cluster client's seed).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The client ports of every node.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// The node that owns `key`'s hash slot (asks the first node for
    /// `CLUSTER KEYSLOT` and `CLUSTER SLOTS`).
    pub fn node_for_key(&self, key: &str) -> Result<&RedisServer, TestingError> {
        let asked = &self.nodes[0];
        let unexpected = |command: &str, reply: &RespValue| TestingError::UnexpectedReply {
            command: command.into(),
            reply: reply.to_string(),
        };
        let reply = asked.command(&["CLUSTER", "KEYSLOT", key])?;
        let slot = reply
            .as_integer()
            .ok_or_else(|| unexpected("CLUSTER KEYSLOT", &reply))?;
        let slots = asked.command(&["CLUSTER", "SLOTS"])?;
        let ranges = slots
            .as_array()
            .ok_or_else(|| unexpected("CLUSTER SLOTS", &slots))?;
        for range in ranges {
            // Each entry: [first, last, [ip, port, id, ...], replicas...].
            let fields = range.as_array().unwrap_or(&[]);
            let (Some(first), Some(last), Some(master)) = (
                fields.first().and_then(RespValue::as_integer),
                fields.get(1).and_then(RespValue::as_integer),
                fields.get(2).and_then(RespValue::as_array),
            ) else {
                continue;
            };
            if (first..=last).contains(&slot) {
                let port = master.get(1).and_then(RespValue::as_integer);
                if let Some(node) = self
                    .nodes
                    .iter()
                    .find(|n| Some(i64::from(n.port())) == port)
                {
                    return Ok(node);
                }
            }
        }
        Err(TestingError::ClusterSetup(format!(
            "no node of this cluster owns slot {slot} of key {key:?}"
        )))
    }

    /// Deletes all keys on every node (all nodes are masters).
    pub fn flushall(&self) -> Result<(), TestingError> {
        self.nodes.iter().try_for_each(RedisServer::flushall)
    }
}
