//! fred against a private `redis-server`: what is particular to this adapter.
//! The backend contract (`SET NX PX`, NOSCRIPT fallback, reply and error
//! conversion, on a client and on a pool) runs in the workspace's
//! `tests/backend_contract.rs`.
#![allow(clippy::expect_used)]

use std::time::Duration;

use redsem_core::script::MUTEX_RELEASE;
use redsem_core::{Arg, BackendErrorKind, RedisBackend};
use redsem_fred::fred::prelude::*;
use redsem_fred::FredBackend;
use redsem_testing::RedisServer;

fn start_server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("{e}"))
}

/// A client with a command timeout, so fred arms tokio timers on every call.
fn client(url: &str, timeout: Duration) -> Client {
    let config = Config::from_url(url).expect("url");
    Builder::from_config(config)
        .with_performance_config(|perf| perf.default_command_timeout = timeout)
        .build()
        .expect("client")
}

/// Uses `backend` from `futures::executor::block_on` on a new plain thread
/// (no tokio context there), then drops a call there half-way.
fn use_on_a_plain_thread(backend: impl RedisBackend + 'static, key: &'static str) {
    std::thread::spawn(move || {
        futures::executor::block_on(async {
            assert!(backend.set_nx_px(key, "me", 10_000).await.expect("set"));
            let reply = backend
                .run_script(&MUTEX_RELEASE, &[key], &[Arg::Str("me")])
                .await;
            assert_eq!(reply.expect("release").as_i64(), Some(1));
        });
        // A call dropped half-way, outside the runtime, must not panic.
        let mut call = Box::pin(backend.set_nx_px(key, "me", 10_000));
        let _ = futures::FutureExt::now_or_never(&mut call);
        drop(call);
    })
    .join()
    .expect("the plain thread did not panic");
}

#[test]
fn polled_by_block_on_on_a_plain_thread() {
    let server = start_server();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Built inside the runtime: `new` captures it.
    let captured = rt.block_on(async {
        let client = client(&server.url(), Duration::from_secs(5));
        client.init().await.expect("connect");
        FredBackend::new(client)
    });
    // Built outside any runtime: the handle is given.
    let given = FredBackend::new(captured.client().clone()).with_runtime(rt.handle().clone());

    use_on_a_plain_thread(captured, "plain:captured");
    use_on_a_plain_thread(given, "plain:given");
}

#[tokio::test]
async fn client_handed_over_before_init() {
    let server = start_server();
    let client = client(&server.url(), Duration::from_secs(5));
    let backend = FredBackend::new(client.clone());
    let call = tokio::spawn(async move { backend.set_nx_px("early", "me", 10_000).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.init().await.expect("connect");
    let set = call.await.expect("task");
    assert!(set.expect("set once connected"));
}

#[tokio::test]
async fn lost_server_is_a_retryable_error() {
    let mut server = start_server();
    // fred queues the command until it reconnects; the timeout ends the wait.
    let client = client(&server.url(), Duration::from_millis(300));
    client.init().await.expect("connect");
    let backend = FredBackend::new(client);
    assert!(backend.set_nx_px("lost", "me", 10_000).await.expect("set"));
    server.stop().expect("stop redis-server");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = backend
        .set_nx_px("lost", "me", 10_000)
        .await
        .expect_err("server is gone");
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(err.kind(), BackendErrorKind::Timeout, "{err:?}");
}
