//! Test support for redsem: private `redis-server` processes and clusters.
//!
//! Integration tests must never touch a Redis they did not start (in
//! particular not the one on 127.0.0.1:6379), so this crate starts servers on
//! free loopback ports, each with its own temp dir and no persistence:
//!
//! ```no_run
//! use redsem_testing::RedisServer;
//!
//! # fn main() -> Result<(), redsem_testing::TestingError> {
//! let mut server = RedisServer::start()?;
//! let url = server.url(); // hand this to the client under test
//! # let _ = url;
//! server.pause()?; // SIGSTOP: a stalled node
//! server.resume()?;
//! server.stop()?; // SIGKILL: a crashed node
//! server.start_again()?; // same port, empty data
//! # Ok(())
//! # }
//! ```
//!
//! [`RedisCluster`] builds a cluster of masters, and [`shared_cluster`] gives
//! one cluster per test binary for tests that only need *a* cluster.
//! [`RedisSentinel`] starts a primary, a replica and three Sentinels.
//!
//! [`FaultProxy`] sits between a client and a server and injects network
//! faults at run time: latency, a black hole, refused or reset connections,
//! and a switch to another upstream (a failover as the client sees it).
//! [`RespConnection`] is a tiny persistent RESP2 client for assertions.
//!
//! # Cleanup, also after crashes
//!
//! Dropping a handle kills its server(s), also while a test unwinds from a
//! panic. For the cases where `Drop` never runs (the test process is
//! SIGKILLed, aborts, or the server lives in a `static`), every server is run
//! under a small `sh` wrapper holding a pipe from the test process: when the
//! test process exits in any way the pipe closes and the wrapper SIGKILLs the
//! server. No unsafe code is involved. Temp dirs of such crashed runs are
//! swept (on Linux) by a later run.
//!
//! # Requirements
//!
//! `sh` and `redis-server` (and `redis-cli` for clusters of 3+ masters) on
//! `PATH`; Redis 7.0 or newer for clusters. A missing program is an error
//! that says how to install it, never a silently skipped test.

mod cluster;
mod error;
mod proxy;
mod resp;
mod sentinel;
mod server;
mod util;
mod wrapper;

use std::sync::OnceLock;

pub use cluster::RedisCluster;
pub use error::TestingError;
pub use proxy::{FaultProxy, ProxyMode, ProxyStats};
pub use resp::{RespConnection, RespValue};
pub use sentinel::RedisSentinel;
pub use server::RedisServer;

/// The number of masters of the [`shared_cluster`].
pub const SHARED_CLUSTER_MASTERS: usize = 3;

/// One 3-master cluster per test binary, started on first use.
///
/// It is never dropped (it lives in a `static`); its servers die with the
/// test process through the wrapper mechanism. Tests running in parallel
/// share it, so they must use distinct keys and must not flush or stop it.
/// If starting fails, every caller gets the same error.
pub fn shared_cluster() -> Result<&'static RedisCluster, TestingError> {
    static SHARED: OnceLock<Result<RedisCluster, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| RedisCluster::start(SHARED_CLUSTER_MASTERS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| TestingError::SharedCluster(e.clone()))
}
