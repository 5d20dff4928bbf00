//! Tests of `RedisCluster` and `shared_cluster`.

use std::error::Error;
use std::time::Duration;

use redsem_testing::{shared_cluster, RedisCluster, TestingError};

type TestResult = Result<(), Box<dyn Error>>;

fn cluster_info(cluster: &RedisCluster, node: usize) -> Result<String, TestingError> {
    let reply = cluster.nodes()[node].command(&["CLUSTER", "INFO"])?;
    Ok(reply.as_str().unwrap_or_default().to_owned())
}

#[test]
fn three_master_cluster() -> TestResult {
    let cluster = RedisCluster::start(3)?;
    assert_eq!(cluster.nodes().len(), 3);
    assert_eq!(cluster.ports().len(), 3);
    assert!(!cluster.ports().contains(&6379));
    assert_eq!(
        cluster.urls()[0],
        format!("redis://127.0.0.1:{}", cluster.ports()[0])
    );
    for node in 0..3 {
        let info = cluster_info(&cluster, node)?;
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_size:3"), "{info}");
    }

    for key in ["foo", "bar", "{user1}:lock", "semaphore"] {
        let owner = cluster.node_for_key(key)?;
        assert!(owner.command(&["SET", key, "v"])?.is_ok());
        assert_eq!(owner.command(&["GET", key])?.as_str(), Some("v"));
        // Every other node redirects.
        for node in cluster.nodes().iter().filter(|n| n.port() != owner.port()) {
            let reply = node.command(&["GET", key])?;
            let error = reply.error_message().unwrap_or_default();
            assert!(error.starts_with("MOVED"), "{key}: {reply}");
        }
    }

    cluster.flushall()?;
    for node in cluster.nodes() {
        assert_eq!(node.command(&["DBSIZE"])?.as_integer(), Some(0));
    }
    Ok(())
}

#[test]
fn restarted_node_rejoins() -> TestResult {
    let mut cluster = RedisCluster::start(3)?;
    let node = &mut cluster.nodes_mut()[1];
    let port = node.port();
    node.stop()?;
    node.start_again()?;
    assert_eq!(node.port(), port);
    cluster.wait_until_ready(Duration::from_secs(15))?;
    Ok(())
}

#[test]
fn small_clusters_are_built_without_redis_cli() -> TestResult {
    for masters in [1, 2] {
        let cluster = RedisCluster::start(masters)?;
        let info = cluster_info(&cluster, 0)?;
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
        let owner = cluster.node_for_key("k")?;
        assert!(owner.command(&["SET", "k", "v"])?.is_ok());
    }
    Ok(())
}

#[test]
fn zero_masters_is_rejected() {
    assert!(matches!(
        RedisCluster::start(0),
        Err(TestingError::InvalidArgument(_))
    ));
}

#[test]
fn shared_cluster_is_started_once() -> TestResult {
    let first = shared_cluster()?;
    let second = shared_cluster()?;
    assert!(std::ptr::eq(first, second));
    assert!(cluster_info(first, 0)?.contains("cluster_state:ok"));
    let owner = first.node_for_key("shared_cluster_is_started_once")?;
    assert!(owner
        .command(&["SET", "shared_cluster_is_started_once", "1"])?
        .is_ok());
    Ok(())
}
