//! Runs a conformance scenario on fresh private redis-servers under a tokio
//! runtime, for any backend: each runner binary only says how to connect.

use std::future::Future;
use std::sync::Arc;

use redsem_core::RedisBackend;

use super::real_node::real_env;
use super::Env;

/// A tokio multi-thread runtime with two workers (the machine's cores).
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Starts `nodes` servers, connects each through `connect`, runs `scenario`.
pub fn run_on_real_redis<C, CFut, S, SFut>(nodes: usize, connect: C, scenario: S)
where
    C: Fn(String) -> CFut,
    CFut: Future<Output = Arc<dyn RedisBackend>>,
    S: FnOnce(Env) -> SFut,
    SFut: Future<Output = ()>,
{
    tokio_runtime().block_on(async { scenario(real_env(nodes, connect).await).await });
}

/// Expands a scenario list into one `#[test]` per scenario, each on fresh
/// private redis-servers connected through the binary's own `connect(url)`.
macro_rules! real_redis_tests {
    ($($name:ident: $nodes:expr => $path:path,)*) => {$(
        #[test]
        fn $name() {
            common::runner::run_on_real_redis($nodes, connect, $path);
        }
    )*};
}

pub(crate) use real_redis_tests;
