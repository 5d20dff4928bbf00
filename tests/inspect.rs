//! Issue 13: `inspect()` on all six kinds, on real redis-servers: who holds
//! the lock, with what permits, expiring when.

use std::time::Duration;

use redsem_core::{
    Lock, LockOptions, MultiSemaphore, Mutex, NodeInspection, RedlockMultiSemaphore, RedlockMutex,
    RedlockSemaphore, Semaphore,
};
use redsem_redis::RedisRsBackend;
use redsem_testing::RedisServer;

fn options() -> LockOptions {
    LockOptions::builder()
        .lock_timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Checks that `node` shows exactly `expected` (identifier, permits), each
/// expiring within the lock timeout.
fn assert_holders(node: &NodeInspection, expected: &[(&str, u32)]) {
    let mut seen: Vec<(&str, u32)> = node
        .holders
        .iter()
        .map(|h| (h.identifier.as_str(), h.permits))
        .collect();
    let mut expected = expected.to_vec();
    seen.sort_unstable();
    expected.sort_unstable();
    assert_eq!(seen, expected);
    for holder in &node.holders {
        assert!(holder.expires_in > Duration::from_secs(25), "{holder:?}");
        assert!(holder.expires_in <= Duration::from_secs(30), "{holder:?}");
    }
    assert_eq!(node.foreign, None);
}

async fn inspect_one(lock: &dyn Lock, expected: &[(&str, u32)], nodes: usize) {
    let seen = lock.inspect().await.unwrap();
    assert_eq!(seen.key, lock.key());
    assert_eq!(seen.nodes.len(), nodes);
    for node in &seen.nodes {
        assert_holders(node.as_ref().unwrap(), expected);
    }
}

#[tokio::test]
async fn single_node_kinds() {
    let server = RedisServer::start().unwrap();
    let backend = RedisRsBackend::connect(&server.url()).await.unwrap();
    let mutex = Mutex::with_options(backend.clone(), "m", options()).unwrap();
    inspect_one(&mutex, &[], 1).await;
    let g = mutex.acquire().await.unwrap();
    inspect_one(&mutex, &[(g.identifier(), 1)], 1).await;

    let sem = Semaphore::with_options(backend.clone(), "s", 5, options()).unwrap();
    let multi = MultiSemaphore::with_options(backend.clone(), "s", 5, 3, options()).unwrap();
    let a = sem.acquire().await.unwrap();
    let b = multi.acquire().await.unwrap();
    let expected = [(a.identifier(), 1), (b.identifier(), 3)];
    inspect_one(&sem, &expected, 1).await;
    inspect_one(&multi, &expected, 1).await;

    server
        .command(&["HSET", "mutex:foreign", "a", "b"])
        .unwrap();
    let foreign = Mutex::new(backend, "foreign")
        .unwrap()
        .inspect()
        .await
        .unwrap();
    let node = foreign.nodes[0].as_ref().unwrap();
    assert_eq!(node.foreign.as_deref(), Some("hash"));
    for guard in [g, a, b] {
        guard.release().await.unwrap();
    }
}

#[tokio::test]
async fn redlock_kinds_per_node() {
    let mut servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start().unwrap()).collect();
    let mut nodes = Vec::new();
    for server in &servers {
        nodes.push(RedisRsBackend::connect(&server.url()).await.unwrap());
    }
    let mutex = RedlockMutex::with_options(nodes.clone(), "m", options()).unwrap();
    let g = mutex.acquire().await.unwrap();
    assert!(redsem_core::flush(Duration::from_secs(5)).await);
    inspect_one(&mutex, &[(g.identifier(), 1)], 3).await;

    let sem = RedlockSemaphore::with_options(nodes.clone(), "s", 4, options()).unwrap();
    let multi = RedlockMultiSemaphore::with_options(nodes.clone(), "s", 4, 2, options()).unwrap();
    let a = sem.acquire().await.unwrap();
    let b = multi.acquire().await.unwrap();
    assert!(redsem_core::flush(Duration::from_secs(5)).await);
    inspect_one(&multi, &[(a.identifier(), 1), (b.identifier(), 2)], 3).await;

    // a node that cannot be read is reported, the others still are
    servers[0].stop().unwrap();
    let seen = sem.inspect().await.unwrap();
    assert!(seen.nodes[0].is_err());
    assert_holders(
        seen.nodes[1].as_ref().unwrap(),
        &[(a.identifier(), 1), (b.identifier(), 2)],
    );
}
