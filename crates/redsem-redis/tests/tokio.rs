//! redis-rs on tokio, against a private `redis-server`: what is particular to
//! this adapter. The backend contract (`SET NX PX`, NOSCRIPT fallback, reply
//! and error conversion) runs in the workspace's `tests/backend_contract.rs`.
#![cfg(feature = "tokio")]
#![allow(clippy::expect_used)]

use std::time::Duration;

use redsem_core::script::MUTEX_RELEASE;
use redsem_core::{Arg, BackendErrorKind, RedisBackend};
use redsem_redis::RedisRsBackend;
use redsem_testing::RedisServer;

fn start_server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("{e}"))
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
    let captured = rt
        .block_on(RedisRsBackend::connect(&server.url()))
        .expect("connect");
    // Built outside any runtime: the handle is given.
    let conn = captured.connection().clone();
    let given = RedisRsBackend::new(conn).with_runtime(rt.handle().clone());

    use_on_a_plain_thread(captured, "plain:captured");
    use_on_a_plain_thread(given, "plain:given");
}

#[tokio::test]
async fn lost_server_is_a_connection_error() {
    let mut server = start_server();
    let backend = RedisRsBackend::connect(&server.url())
        .await
        .expect("connect");
    assert!(backend.set_nx_px("lost", "me", 10_000).await.expect("set"));
    server.stop().expect("stop redis-server");
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

/// Without a TLS feature a `rediss://` URL is refused with an error naming
/// the feature to enable, never tried in plaintext (the server here is a
/// plaintext one that would accept a plaintext connection).
#[cfg(not(any(feature = "tls-rustls", feature = "tls-native-tls")))]
#[tokio::test]
async fn rediss_without_tls_is_refused_naming_the_feature() {
    let server = start_server();
    let url = format!("rediss://:secret@127.0.0.1:{}", server.port());
    let err = RedisRsBackend::connect(&url)
        .await
        .expect_err("rediss:// without TLS support must be refused");
    assert_eq!(err.kind(), BackendErrorKind::Other, "{err}");
    assert!(err.message().contains("`tls-rustls`"), "{err}");
    assert!(!err.message().contains("secret"), "{err}");
}

/// A wrong password fails `connect` (redis-rs reports it as
/// `AuthenticationFailed`, without the server's `WRONGPASS` text).
#[tokio::test]
async fn wrong_password_fails_connect_with_the_server_reply() {
    let server = start_server();
    // Set after the start: the harness's readiness probe does not log in.
    let reply = server
        .command(&["CONFIG", "SET", "requirepass", "right"])
        .expect("CONFIG SET");
    assert!(reply.is_ok(), "{reply}");
    let url = format!("redis://:wrong@127.0.0.1:{}", server.port());
    let err = RedisRsBackend::connect(&url)
        .await
        .expect_err("a wrong password must fail");
    assert!(err.to_string().contains("authentication failed"), "{err}");
}

/// Issue 9: with redis-rs's rustls support alone (no crypto provider chosen)
/// `connect` panicked inside redis-rs ("no process-level CryptoProvider
/// available"). With `tls-rustls` it installs ring's provider and tries TLS:
/// against this plaintext server the handshake fails, as an error. Never a
/// panic, never a plaintext fallback.
#[cfg(feature = "tls-rustls")]
#[tokio::test]
async fn rediss_connect_never_panics_nor_falls_back_to_plaintext() {
    let server = start_server();
    let url = format!("rediss://127.0.0.1:{}", server.port());
    let err = RedisRsBackend::connect(&url)
        .await
        .expect_err("a TLS handshake with a plaintext server fails");
    // The server takes the ClientHello for a bad command and waits for
    // more: redis-rs's connection timeout ends the handshake.
    assert!(
        matches!(
            err.kind(),
            BackendErrorKind::Connection | BackendErrorKind::Timeout
        ),
        "{err}"
    );
}
