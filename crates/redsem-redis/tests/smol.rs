//! redis-rs on smol (feature `smol`, with or without `tokio`), against a
//! private `redis-server`. The full backend contract runs under smol in the
//! workspace's `tests/backend_contract.rs` (`*::redis_rs_smol`); this is the
//! test of a build without tokio.
#![cfg(feature = "smol")]
#![allow(clippy::expect_used)]

use redsem_core::script::MUTEX_RELEASE;
use redsem_core::{Arg, RedisBackend};
use redsem_redis::RedisRsBackend;
use redsem_testing::RedisServer;

#[test]
fn runs_on_smol() {
    let server = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    smol::block_on(async {
        let backend = RedisRsBackend::connect(&server.url())
            .await
            .expect("connect");
        assert!(backend.set_nx_px("smol", "me", 10_000).await.expect("set"));
        // A fresh server has no script cached: EVALSHA answers NOSCRIPT and
        // `run_script` falls back to EVAL.
        let released = backend
            .run_script(&MUTEX_RELEASE, &["smol"], &[Arg::Str("me")])
            .await;
        assert_eq!(released.expect("release").as_i64(), Some(1));
        let again = backend
            .eval_sha(&MUTEX_RELEASE, &["smol"], &[Arg::Str("me")])
            .await;
        assert_eq!(again.expect("cached by EVAL").as_i64(), Some(0));
    });
}
