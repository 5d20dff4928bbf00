//! The conformance scenarios through redis-rs (`ConnectionManager`, which
//! reconnects after a node restart) on private redis-servers, under a tokio
//! multi-thread runtime.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::runner::real_redis_tests;
use common::scenarios::*;
use redsem_core::RedisBackend;
use redsem_redis::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redsem_redis::redis::Client;
use redsem_redis::RedisRsBackend;

async fn connect(url: String) -> Arc<dyn RedisBackend> {
    let client = Client::open(url).expect("valid url");
    // Fail fast while a node is down, reconnect quickly when it is back.
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(100))
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(None);
    let manager = ConnectionManager::new_with_config(client, config)
        .await
        .expect("connect");
    Arc::new(RedisRsBackend::new(manager))
}

single_node_scenarios!(real_redis_tests);
semaphore_scenarios!(real_redis_tests);
multi_semaphore_scenarios!(real_redis_tests);
redlock_scenarios!(real_redis_tests);
