//! redsem-core depends on no async runtime: these tests run the same
//! "hold past the lock timeout" scenarios (refresh must keep the key) under
//! every executor a user may have, on the mock and on real redis-servers.

mod common;

use std::sync::Arc;

use common::mock_node::mock_env;
use common::real_node::real_env;
use common::scenarios::mutex;
use common::timing::{sleep, t, OUTLIVE};
use common::Env;
use redsem_core::{MultiSemaphore, RedisBackend};
use redsem_fred::fred::prelude::*;
use redsem_fred::FredBackend;
use redsem_redis::RedisRsBackend;

/// The scenarios, one after the other, on the same nodes.
async fn hold_past_lock_timeout(env: &Env) {
    mutex::refresh_keeps_the_lock(reuse(env)).await;
    mutex::drop_releases(reuse(env)).await;
    multi_semaphore_held_past_lock_timeout(reuse(env)).await;
}

fn reuse(env: &Env) -> Env {
    Env {
        nodes: env.nodes.clone(),
        mock: env.mock,
        time: env.time.clone(),
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

async fn multi_semaphore_held_past_lock_timeout(env: Env) {
    let sem = MultiSemaphore::with_options(env.backend(), "rt", 3, 2, t()).unwrap();
    let g = sem.acquire().await.unwrap();
    sleep(OUTLIVE).await;
    let id = g.identifier().to_owned();
    assert_eq!(
        env.node().zrange("semaphore:rt"),
        [format!("{id}_0"), format!("{id}_1")]
    );
    g.release().await.unwrap();
    assert!(env.node().zrange("semaphore:rt").is_empty());
}

#[test]
fn mock_under_futures_block_on() {
    futures::executor::block_on(hold_past_lock_timeout(&mock_env(1)));
}

#[test]
fn mock_under_async_io_block_on() {
    async_io::block_on(hold_past_lock_timeout(&mock_env(1)));
}

#[test]
fn mock_under_smol() {
    smol::block_on(hold_past_lock_timeout(&mock_env(1)));
}

#[test]
fn mock_under_tokio_current_thread() {
    let rt = current_thread();
    rt.block_on(hold_past_lock_timeout(&mock_env(1)));
}

async fn redis_rs(url: String) -> Arc<dyn RedisBackend> {
    Arc::new(RedisRsBackend::connect(&url).await.expect("connect"))
}

/// One server, shared by the scenarios of one test.
async fn one_real_node<F, Fut>(connect: F) -> Env
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn RedisBackend>>,
{
    real_env(1, connect).await
}

#[test]
fn redis_rs_under_tokio_current_thread() {
    let rt = current_thread();
    rt.block_on(async {
        let env = one_real_node(redis_rs).await;
        hold_past_lock_timeout(&env).await;
    });
}

#[test]
fn redis_rs_under_tokio_multi_thread() {
    let rt = multi_thread(2);
    rt.block_on(async {
        let env = one_real_node(redis_rs).await;
        hold_past_lock_timeout(&env).await;
    });
}

#[test]
fn redis_rs_under_smol() {
    // No tokio context here: redis-rs runs on smol (smol-comp).
    smol::block_on(async {
        let env = one_real_node(redis_rs).await;
        hold_past_lock_timeout(&env).await;
    });
}

#[test]
fn redis_rs_from_block_on_with_tokio_elsewhere() {
    // The connection lives on a tokio runtime; the locks are awaited from a
    // plain `block_on` on this thread.
    let rt = multi_thread(1);
    let env = rt.block_on(one_real_node(redis_rs));
    futures::executor::block_on(hold_past_lock_timeout(&env));
}

async fn fred(url: String) -> Arc<dyn RedisBackend> {
    let client = Builder::from_config(Config::from_url(&url).expect("url"))
        .build()
        .expect("client");
    client.init().await.expect("connect");
    Arc::new(FredBackend::new(client))
}

#[test]
fn fred_under_tokio_current_thread() {
    let rt = current_thread();
    rt.block_on(async {
        let env = one_real_node(fred).await;
        hold_past_lock_timeout(&env).await;
    });
}

#[test]
fn fred_awaited_from_smol_with_its_runtime_on_another_thread() {
    let rt = multi_thread(1);
    let env = rt.block_on(one_real_node(fred));
    smol::block_on(hold_past_lock_timeout(&env));
}

#[test]
fn fred_awaited_from_futures_block_on() {
    let rt = multi_thread(1);
    let env = rt.block_on(one_real_node(fred));
    futures::executor::block_on(hold_past_lock_timeout(&env));
}

/// A tokio runtime shut down under held locks (its client futures then
/// panic when polled) must not break redsem's background thread: locks on
/// other runtimes keep refreshing, and the orphaned hold is reported lost.
#[test]
fn a_runtime_shut_down_under_held_locks_breaks_nothing_else() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use common::timing::t_builder;
    use redsem_core::Mutex;

    let server = common::real_node::start_server();
    let lost = Arc::new(AtomicUsize::new(0));
    let count = lost.clone();
    let options = t_builder()
        .on_lock_lost(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();

    let doomed = multi_thread(1);
    let orphan = doomed.block_on(async {
        // A ConnectionManager reconnects with tokio timers, which panic once
        // their runtime is gone.
        let client = redsem_redis::redis::Client::open(server.url()).unwrap();
        let config = redsem_redis::redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_millis(500)));
        let manager = redsem_redis::redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .unwrap();
        let backend: Arc<dyn RedisBackend> = Arc::new(RedisRsBackend::new(manager));
        Mutex::with_options(backend, "orphan", options)
            .unwrap()
            .acquire()
            .await
            .unwrap()
    });
    drop(doomed); // the orphan's refresh now polls a client whose runtime is gone

    let rt = multi_thread(1);
    rt.block_on(async {
        let backend = redis_rs(server.url()).await;
        let mutex = Mutex::with_options(backend, "alive", t_builder().build().unwrap()).unwrap();
        let guard = mutex.acquire().await.unwrap();
        sleep(OUTLIVE).await; // refresh ticks of both holds ran meanwhile
        assert!(guard.is_acquired(), "refresh stopped for a healthy lock");
        let key = server.command(&["GET", "mutex:alive"]).unwrap();
        assert_eq!(key.as_str(), Some(guard.identifier()));
        guard.release().await.unwrap();
    });
    assert!(!orphan.is_acquired());
    assert_eq!(
        lost.load(Ordering::SeqCst),
        1,
        "the orphaned hold is reported lost once"
    );
    drop(orphan);
}
