//! Clients for tests on real redis-servers that break the network or the
//! server: a redis-rs `ConnectionManager` and a fred client with a
//! reconnect policy, as users would set them up to ride through faults.

use std::future::Future;
use std::sync::Arc;

use redsem_core::RedisBackend;
use redsem_fred::fred::prelude::{Builder, ClientLike, Config as FredConfig, ReconnectPolicy};
use redsem_fred::FredBackend;
use redsem_redis::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redsem_redis::redis::Client;
use redsem_redis::RedisRsBackend;
use tokio::runtime::Runtime;

use super::timing::ms;

/// Connects a backend to a URL.
pub type Connect = fn(String) -> std::pin::Pin<Box<dyn Future<Output = Arc<dyn RedisBackend>>>>;

/// A tokio multi-thread runtime with two workers (the machine's cores).
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A redis-rs `ConnectionManager` that reconnects quickly and fails fast
/// while nothing answers (as in the conformance runner); no response
/// timeout of its own (redsem bounds every call).
pub async fn connection_manager(url: String) -> ConnectionManager {
    let client = Client::open(url).expect("valid url");
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_min_delay(ms(20))
        .set_max_delay(ms(100))
        .set_connection_timeout(Some(ms(500)))
        .set_response_timeout(None);
    ConnectionManager::new_with_config(client, config)
        .await
        .expect("connect")
}

/// redis-rs through a [`connection_manager`].
async fn connect_redis_rs(url: String) -> Arc<dyn RedisBackend> {
    Arc::new(RedisRsBackend::new(connection_manager(url).await))
}

/// fred: reconnect every 100 ms forever, one attempt per command.
async fn connect_fred(url: String) -> Arc<dyn RedisBackend> {
    let config = FredConfig::from_url(&url).expect("valid url");
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = ms(500);
            c.max_command_attempts = 1;
        })
        .set_policy(ReconnectPolicy::new_constant(0, 100))
        .build()
        .expect("fred client");
    client.init().await.expect("connect");
    Arc::new(FredBackend::new(client))
}

pub const REDIS_RS: Connect = |url| Box::pin(connect_redis_rs(url));
pub const FRED: Connect = |url| Box::pin(connect_fred(url));
