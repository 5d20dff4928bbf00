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

use common::cluster_node::{
    check_deny_list, cluster_scenario_list, exclusive, keys_on_every_master, reset_cluster,
    run_on_cluster, runtime, shared, Scenario,
};
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

fn single_node_list() -> Vec<Scenario> {
    single_node_scenarios!(cluster_scenario_list)
}

fn semaphore_list() -> Vec<Scenario> {
    semaphore_scenarios!(cluster_scenario_list)
}

fn multi_semaphore_list() -> Vec<Scenario> {
    multi_semaphore_scenarios!(cluster_scenario_list)
}

#[test]
fn single_node_scenarios_on_cluster() {
    run_on_cluster("single_node", single_node_list(), connect);
}

#[test]
fn semaphore_scenarios_on_cluster() {
    run_on_cluster("semaphore", semaphore_list(), connect);
}

#[test]
fn multi_semaphore_scenarios_on_cluster() {
    run_on_cluster("multi_semaphore", multi_semaphore_list(), connect);
}

#[test]
fn deny_list_names_scenarios() {
    check_deny_list(&[
        &single_node_list(),
        &semaphore_list(),
        &multi_semaphore_list(),
    ]);
}

/// Mutexes on every master at once through one client; scripts load
/// lazily on the master that owns the key.
#[test]
fn keys_on_every_master_and_lazy_scripts() {
    let _serial = exclusive();
    reset_cluster();
    runtime().block_on(async { keys_on_every_master(connect().await).await });
}
