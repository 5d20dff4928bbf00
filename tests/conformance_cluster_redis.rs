//! The conformance scenarios through redis-rs's cluster client
//! (`redis::cluster_async::ClusterConnection`) on the binary's shared
//! 3-master Redis Cluster, under a tokio multi-thread runtime.
//!
//! All scenarios share the one cluster and use fixed keys, so each list is
//! one `#[test]` that runs its scenarios in turn, on a flushed cluster, and
//! prints each name before it runs; see `common::cluster_node`. Scenarios
//! that stop or pause their node are skipped there (`NODE_FAULT_SCENARIOS`);
//! the Redlock list needs independent nodes and is not run on a cluster.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::cluster_node::{cluster_conformance_tests, cluster_scenario_list, shared};
use common::scenarios::*;
use redsem_core::RedisBackend;
use redsem_redis::redis::cluster::ClusterClient;
use redsem_redis::RedisRsBackend;

async fn connect() -> Arc<dyn RedisBackend> {
    let client = ClusterClient::builder(shared().urls())
        .connection_timeout(Duration::from_millis(500))
        .build()
        .expect("valid cluster urls");
    let conn = client
        .get_async_connection()
        .await
        .expect("connect to the cluster");
    Arc::new(RedisRsBackend::new(conn))
}

cluster_conformance_tests!(connect);
