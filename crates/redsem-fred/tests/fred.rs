//! fred against a real `redis-server`.
#![allow(clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use redsem_core::script::MUTEX_RELEASE;
use redsem_core::{Arg, BackendErrorKind, RedisBackend};
use redsem_fred::fred::prelude::*;
use redsem_fred::FredBackend;
use support::{checks, RedisServer};

/// A client with a command timeout, so fred arms tokio timers on every call.
fn client(url: &str, timeout: Duration) -> Client {
    let config = Config::from_url(url).expect("url");
    Builder::from_config(config)
        .with_performance_config(|perf| perf.default_command_timeout = timeout)
        .build()
        .expect("client")
}

async fn connected(url: &str) -> Client {
    let client = client(url, Duration::from_secs(5));
    client.init().await.expect("connect");
    client
}

async fn script_flush(client: &Client) {
    client.script_flush(false).await.expect("SCRIPT FLUSH");
}

#[tokio::test]
async fn backend_checks() {
    let server = RedisServer::start();
    let backend = FredBackend::new(connected(&server.url()).await);
    checks::all(&backend, "fred", script_flush(backend.client())).await;
}

#[tokio::test]
async fn backend_checks_on_a_pool() {
    let server = RedisServer::start();
    let config = Config::from_url(&server.url()).expect("url");
    let pool = Builder::from_config(config).build_pool(2).expect("pool");
    pool.init().await.expect("connect");
    let flush = async { pool.next().script_flush(false).await.expect("SCRIPT FLUSH") };
    let backend = FredBackend::new(pool.clone());
    checks::all(&backend, "pool", flush).await;
}

#[test]
fn polled_by_block_on_on_a_plain_thread() {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Built inside the runtime: `new` captures it.
    let captured = rt.block_on(async { FredBackend::new(connected(&server.url()).await) });
    // Built outside any runtime: the handle is given.
    let given = FredBackend::new(captured.client().clone()).with_runtime(rt.handle().clone());

    let backends: Vec<Arc<dyn RedisBackend>> = vec![Arc::new(captured), Arc::new(given)];
    for (i, backend) in backends.into_iter().enumerate() {
        std::thread::spawn(move || {
            let key = format!("plain:{i}");
            futures::executor::block_on(async {
                assert!(backend.set_nx_px(&key, "me", 10_000).await.expect("set"));
                let reply = backend
                    .run_script(&MUTEX_RELEASE, &[&key], &[Arg::Str("me")])
                    .await;
                assert_eq!(reply.expect("release").as_i64(), Some(1));
            });
            // A call dropped half-way, outside the runtime, must not panic.
            let mut call = Box::pin(backend.set_nx_px(&key, "me", 10_000));
            let _ = futures::FutureExt::now_or_never(&mut call);
            drop(call);
        })
        .join()
        .expect("the plain thread did not panic");
    }
}

#[tokio::test]
async fn client_handed_over_before_init() {
    let server = RedisServer::start();
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
    let server = RedisServer::start();
    // fred queues the command until it reconnects; the timeout ends the wait.
    let client = client(&server.url(), Duration::from_millis(300));
    client.init().await.expect("connect");
    let backend = FredBackend::new(client);
    assert!(backend.set_nx_px("lost", "me", 10_000).await.expect("set"));
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = backend
        .set_nx_px("lost", "me", 10_000)
        .await
        .expect_err("server is gone");
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(err.kind(), BackendErrorKind::Timeout, "{err:?}");
}
