//! Part 2: Redlock restarts with and without persistence.

use super::*;

/// Holds of instance A before the restarts.
pub(crate) const A_ROUNDS: u64 = 3;

/// The tokens of A's last hold and of B's hold after this arrangement:
///
/// - A holds `A_ROUNDS` times while node 3 is down: nodes 1 and 2 count
///   to `A_ROUNDS`; A writes the resource with its last token;
/// - node 1 goes down, node 2 is killed and restarted (with `persistence`),
///   node 3 comes up: it missed all of A's holds;
/// - a new instance B (no memory of A's tokens) acquires once: its quorum
///   can only be nodes 2 and 3, and it writes the resource.
///
/// Every precondition is asserted, so nothing else can explain the tokens.
pub(crate) fn redlock_restart(persistence: &[&str], keeps_data: bool) -> (u64, u64, FencedWrite) {
    let mut nodes: Vec<RedisServer> = (0..3)
        .map(|_| RedisServer::start_with(persistence).expect("redis-server"))
        .collect();
    let resource_server = RedisServer::start().expect("redis-server");
    let (lock_key, counter) = ("mutex:fenced", "{mutex:fenced}:fence");
    // Short: releases left to retry on a down node end with the hold.
    let options = LockOptions::builder()
        .lock_timeout(Duration::from_secs(1))
        .acquire_timeout(Duration::from_secs(5))
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let rt = runtime();
    rt.block_on(async {
        let resource = FencedResource::new(RESOURCE);
        let store = connect(&resource_server.url()).await;
        let mut a_nodes = Vec::new();
        for node in &nodes {
            a_nodes.push(reconnecting(&node.url()).await);
        }
        // B's client for node 1 connects while node 1 is still up.
        let b_node_1 = reconnecting(&nodes[0].url()).await;

        nodes[2].stop().unwrap();
        let a = RedlockMutex::with_options(a_nodes, KEY, options.clone()).unwrap();
        let mut last_a = 0;
        for round in 1..=A_ROUNDS {
            let guard = a.acquire().await.unwrap();
            assert_eq!(guard.fencing_token(), round);
            last_a = guard.fencing_token();
            if round == A_ROUNDS {
                let wrote = resource.write(&store, last_a, "A").await.unwrap();
                assert_eq!(wrote, FencedWrite::Written);
            }
            guard.release().await.unwrap();
        }
        // A's release retries for node 3 run in the background: let them
        // end before node 3 comes back.
        assert!(redsem_core::flush(Duration::from_secs(10)).await);
        drop(a);
        for node in &nodes[..2] {
            let on_node = get(node, counter).map(|c| c.parse::<u64>().unwrap());
            assert_eq!(on_node, Some(A_ROUNDS), "A's counter");
            assert_eq!(get(node, lock_key), None, "A released");
        }

        nodes[0].stop().unwrap();
        nodes[1].start_again().unwrap(); // SIGKILL, then the same dir
        nodes[2].start_again().unwrap();
        let expected = keeps_data.then(|| A_ROUNDS.to_string());
        assert_eq!(get(&nodes[1], counter), expected, "node 2 after restart");
        assert_eq!(get(&nodes[2], counter), None, "node 3 missed A's holds");
        assert!(!nodes[0].is_running());

        let b_nodes = vec![
            b_node_1,
            reconnecting(&nodes[1].url()).await,
            reconnecting(&nodes[2].url()).await,
        ];
        let b = RedlockMutex::with_options(b_nodes, KEY, options).unwrap();
        let guard = b.try_acquire().await.unwrap().expect("nodes 2 and 3 free");
        let token_b = guard.fencing_token();
        for node in &nodes[1..] {
            assert_eq!(get(node, lock_key).as_deref(), Some(guard.identifier()));
            let on_node = get(node, counter).map(|c| c.parse::<u64>().unwrap());
            assert_eq!(on_node, Some(token_b), "B's token confirmed on its quorum");
        }
        let b_wrote = resource.write(&store, token_b, "B").await.unwrap();
        guard.release().await.unwrap();
        assert!(redsem_core::flush(Duration::from_secs(10)).await);
        (last_a, token_b, b_wrote)
    })
}
