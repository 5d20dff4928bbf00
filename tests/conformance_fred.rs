//! The conformance scenarios through fred on private redis-servers, under a
//! tokio multi-thread runtime.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::runner::real_redis_tests;
use common::scenarios::*;
use redsem_core::RedisBackend;
use redsem_fred::fred::prelude::*;
use redsem_fred::FredBackend;

async fn connect(url: String) -> Arc<dyn RedisBackend> {
    let config = Config::from_url(&url).expect("valid url");
    // Reconnect every 100 ms forever, one attempt per command: a node that
    // is down fails calls (redsem bounds them) instead of queueing them.
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_millis(500);
            c.max_command_attempts = 1;
        })
        .set_policy(ReconnectPolicy::new_constant(0, 100))
        .build()
        .expect("fred client");
    client.init().await.expect("connect");
    Arc::new(FredBackend::new(client))
}

single_node_scenarios!(real_redis_tests);
semaphore_scenarios!(real_redis_tests);
multi_semaphore_scenarios!(real_redis_tests);
redlock_scenarios!(real_redis_tests);
