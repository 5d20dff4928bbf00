//! RedlockSemaphore (RLS-*) and RedlockMultiSemaphore (RLMS-*) behaviours on
//! 3 nodes, plus GAP-11 and the limit-respecting refresh fill (GAP-12), by
//! concern:
//!
//! - `holds`: arguments, holding and releasing, waiting, takeover, both
//!   kinds in one ZSET;
//! - `refresh`: refresh on and off, reuse, loss, the refresh fill;
//! - `limits`: the limit across batches and failed quorums.
//!
//! Each scenario is written once for a [`Kind`] and run for both kinds.

pub mod holds;
pub mod limits;
pub mod refresh;

use redsem_core::LockGuard;

use super::{zranges, Kind};
use crate::common::scenarios::support::sorted;
use crate::common::Env;

/// Every node's ZSET, sorted, is exactly `want` (sorted here).
fn assert_everywhere(env: &Env, want: Vec<String>, what: &str) {
    let want = sorted(want);
    for (i, members) in zranges(&env.nodes).into_iter().enumerate() {
        assert_eq!(sorted(members), want, "node {}: {what}", i + 1);
    }
}

/// The members of every `(kind, guard)` hold.
fn members_of(pairs: &[(Kind, &LockGuard)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, g)| k.members(g.identifier()))
        .collect()
}

/// Releases `first` and checks that every node has exactly `second`'s hold
/// (a `kind` hold) left, then releases `second` and checks that every node
/// is empty.
async fn release_in_turn(env: &Env, first: LockGuard, kind: Kind, second: LockGuard) {
    first.release().await.unwrap();
    assert_everywhere(
        env,
        kind.members(second.identifier()),
        "after releasing the first",
    );
    second.release().await.unwrap();
    assert_everywhere(env, Vec::new(), "after releasing both");
}
