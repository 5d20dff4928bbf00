//! redis-rs on tokio, against a real `redis-server`.
#![cfg(feature = "tokio")]
#![allow(clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use redsem_core::script::MUTEX_RELEASE;
use redsem_core::{Arg, BackendErrorKind, RedisBackend};
use redsem_redis::{redis, RedisRsBackend};
use support::{checks, RedisServer};

async fn script_flush(backend: &RedisRsBackend) {
    let mut conn = backend.connection().clone();
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("SCRIPT FLUSH");
}

#[tokio::test]
async fn backend_checks() {
    let server = RedisServer::start();
    let backend = RedisRsBackend::connect(&server.url())
        .await
        .expect("connect");
    checks::all(&backend, "tokio", script_flush(&backend)).await;
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
    let captured = rt
        .block_on(RedisRsBackend::connect(&server.url()))
        .expect("connect");
    // Built outside any runtime: the handle is given.
    let conn = captured.connection().clone();
    let given = RedisRsBackend::new(conn).with_runtime(rt.handle().clone());

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
async fn lost_server_is_a_connection_error() {
    let server = RedisServer::start();
    let backend = RedisRsBackend::connect(&server.url())
        .await
        .expect("connect");
    assert!(backend.set_nx_px("lost", "me", 10_000).await.expect("set"));
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = backend
        .set_nx_px("lost", "me", 10_000)
        .await
        .expect_err("server is gone");
    assert_eq!(err.kind(), BackendErrorKind::Connection, "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn refused_connect_is_a_connection_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let err = RedisRsBackend::connect(&format!("redis://127.0.0.1:{port}/"))
        .await
        .expect_err("nothing listens there");
    assert_eq!(err.kind(), BackendErrorKind::Connection, "{err}");
    let err = RedisRsBackend::connect("nonsense://")
        .await
        .expect_err("bad url");
    assert_eq!(err.kind(), BackendErrorKind::Other, "{err}");
}
