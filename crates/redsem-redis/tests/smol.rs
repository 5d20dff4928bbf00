//! redis-rs on smol (feature `smol`), against a real `redis-server`.
#![cfg(feature = "smol")]
#![allow(clippy::expect_used)]

mod support;

use redsem_redis::{redis, RedisRsBackend};
use support::{checks, RedisServer};

#[test]
fn backend_checks_under_smol() {
    let server = RedisServer::start();
    smol::block_on(async {
        let backend = RedisRsBackend::connect(&server.url())
            .await
            .expect("connect");
        let flush = async {
            let mut conn = backend.connection().clone();
            let () = redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query_async(&mut conn)
                .await
                .expect("flush");
        };
        checks::all(&backend, "smol", flush).await;
    });
}
