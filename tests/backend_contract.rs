//! The backend contract (`tests/common/backend_checks.rs`) on every backend:
//! the mock, redis-rs (under tokio and under smol) and fred (a client and a
//! pool), the real ones each on a private redis-server.
//!
//! One test per check and backend, named `<check>::<backend>`.

mod common;

use std::future::Future;
use std::sync::Arc;

use common::backend_checks::{self, every_backend_checks, real_redis_checks};
use common::mock_node::mock_env;
use common::real_node::real_env;
use common::runner::run_on_real_redis;
use common::Env;
use redsem_core::RedisBackend;
use redsem_fred::fred::prelude::*;
use redsem_fred::FredBackend;
use redsem_redis::RedisRsBackend;

async fn connect_redis_rs(url: String) -> Arc<dyn RedisBackend> {
    Arc::new(RedisRsBackend::connect(&url).await.expect("connect"))
}

async fn connect_fred(url: String) -> Arc<dyn RedisBackend> {
    let client = Client::new(Config::from_url(&url).expect("url"), None, None, None);
    client.init().await.expect("connect");
    Arc::new(FredBackend::new(client))
}

async fn connect_fred_pool(url: String) -> Arc<dyn RedisBackend> {
    let config = Config::from_url(&url).expect("url");
    let pool = Builder::from_config(config).build_pool(2).expect("pool");
    pool.init().await.expect("connect");
    Arc::new(FredBackend::new(pool))
}

// How each backend runs a check: `check` gets a one-node `Env`.

fn mock<C: FnOnce(Env) -> F, F: Future<Output = ()>>(check: C) {
    futures::executor::block_on(check(mock_env(1)));
}

fn redis_rs<C: FnOnce(Env) -> F, F: Future<Output = ()>>(check: C) {
    run_on_real_redis(1, connect_redis_rs, check);
}

/// No tokio context: redis-rs runs on smol (`smol-comp`).
fn redis_rs_smol<C: FnOnce(Env) -> F, F: Future<Output = ()>>(check: C) {
    smol::block_on(async { check(real_env(1, connect_redis_rs).await).await });
}

fn fred<C: FnOnce(Env) -> F, F: Future<Output = ()>>(check: C) {
    run_on_real_redis(1, connect_fred, check);
}

fn fred_pool<C: FnOnce(Env) -> F, F: Future<Output = ()>>(check: C) {
    run_on_real_redis(1, connect_fred_pool, check);
}

/// A module named after the check, with one test per backend.
macro_rules! check_tests {
    ($check:ident: $($backend:ident),*) => {
        mod $check {
            $(
                #[test]
                fn $backend() {
                    super::$backend(|env| async move {
                        super::backend_checks::$check(env.node(), stringify!($check)).await;
                    });
                }
            )*
        }
    };
}

macro_rules! on_every_backend {
    ($($check:ident,)*) => {$(
        check_tests!($check: mock, redis_rs, redis_rs_smol, fred, fred_pool);
    )*};
}

macro_rules! on_real_redis {
    ($($check:ident,)*) => {$(
        check_tests!($check: redis_rs, redis_rs_smol, fred, fred_pool);
    )*};
}

every_backend_checks!(on_every_backend);
real_redis_checks!(on_real_redis);
