//! The conformance scenarios through a clustered fred client
//! (`ServerConfig::new_clustered`) on the binary's shared
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
use redsem_fred::fred::prelude::*;
use redsem_fred::FredBackend;

async fn connect() -> Arc<dyn RedisBackend> {
    let hosts = shared()
        .ports()
        .into_iter()
        .map(|port| ("127.0.0.1", port))
        .collect();
    let config = Config {
        server: ServerConfig::new_clustered(hosts),
        ..Config::default()
    };
    let client = Builder::from_config(config)
        .with_connection_config(|c| c.connection_timeout = Duration::from_millis(500))
        .build()
        .expect("fred client");
    client.init().await.expect("connect to the cluster");
    Arc::new(FredBackend::new(client))
}

cluster_conformance_tests!(connect);
