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

/// A private server that requires `password` from the `default` user.
fn start_server_with_password(password: &str) -> RedisServer {
    let server = start_server();
    // Set after the start: the harness's readiness probe does not log in.
    let reply = server
        .command(&["CONFIG", "SET", "requirepass", password])
        .expect("CONFIG SET");
    assert!(reply.is_ok(), "{reply}");
    server
}

/// Without a TLS feature a `rediss://` URL is refused with an error naming
/// the feature to enable. fred alone would connect to it in plaintext (the
/// server here is a plaintext one).
#[cfg(not(any(
    feature = "enable-rustls-ring",
    feature = "enable-rustls",
    feature = "enable-native-tls"
)))]
#[tokio::test]
async fn rediss_without_tls_is_refused_naming_the_feature() {
    let server = start_server();
    for scheme in ["rediss", "rediss-cluster", "valkeys"] {
        let url = format!("{scheme}://:secret@127.0.0.1:{}", server.port());
        let err = FredBackend::connect(&url)
            .await
            .expect_err("a TLS URL without TLS support must be refused");
        assert_eq!(err.kind(), BackendErrorKind::Other, "{err}");
        assert!(err.message().contains("`enable-rustls-ring`"), "{err}");
        assert!(!err.message().contains("secret"), "{err}");
    }
}

#[tokio::test]
async fn connect_works_and_a_wrong_password_fails_with_the_server_reply() {
    let server = start_server_with_password("right");
    let url = format!("redis://:right@127.0.0.1:{}", server.port());
    let backend = FredBackend::connect(&url).await.expect("connect");
    assert!(backend.set_nx_px("pw:ok", "me", 10_000).await.expect("set"));

    let url = format!("redis://:wrong@127.0.0.1:{}", server.port());
    let err = FredBackend::connect(&url)
        .await
        .expect_err("a wrong password must fail");
    assert_eq!(err.kind(), BackendErrorKind::Server, "{err}");
    assert!(err.to_string().contains("WRONGPASS"), "{err}");
}

/// Issue 9: a client whose `init()` failed (wrong password), handed to the
/// backend anyway, used to make every call wait for redsem's timeout ("no
/// reply within ..."). Calls now fail at once with the server's reply.
#[tokio::test]
async fn client_whose_init_failed_reports_the_auth_error() {
    let server = start_server_with_password("right");
    let url = format!("redis://:wrong@127.0.0.1:{}", server.port());
    let client = Client::new(Config::from_url(&url).expect("url"), None, None, None);
    let init = client.init().await.expect_err("wrong password");
    assert!(init.to_string().contains("WRONGPASS"), "{init}");
    let backend = FredBackend::new(client);

    for round in 0..3 {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(
            Duration::from_secs(4),
            backend.set_nx_px("pw:failed-init", "me", 10_000),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round}: the call waited instead of failing"));
        let err = result.expect_err("not connected");
        assert_eq!(err.kind(), BackendErrorKind::Server, "{err}");
        assert!(err.message().contains("WRONGPASS"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    // The same through a lock: the acquire fails with the cause.
    let options = redsem_core::LockOptions::builder()
        .acquire_timeout(Duration::from_secs(3))
        .build()
        .expect("options");
    let mutex = redsem_core::Mutex::with_options(backend, "pw:mutex", options).expect("mutex");
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(10), mutex.acquire())
        .await
        .expect("acquire ends")
        .expect_err("cannot acquire");
    assert!(err.to_string().contains("WRONGPASS"), "{err}");
    eprintln!("acquire failed after {:?}: {err}", started.elapsed());
}

/// Without any password the server answers `NOAUTH` to each command.
#[tokio::test]
async fn missing_password_is_a_noauth_error() {
    let server = start_server_with_password("right");
    let client = client(&server.url(), Duration::from_secs(5));
    let _ = client.init().await;
    let backend = FredBackend::new(client);
    let err = tokio::time::timeout(
        Duration::from_secs(4),
        backend.set_nx_px("pw:none", "me", 10_000),
    )
    .await
    .expect("the call must not wait")
    .expect_err("no password");
    assert!(err.message().contains("NOAUTH"), "{err}");
}
