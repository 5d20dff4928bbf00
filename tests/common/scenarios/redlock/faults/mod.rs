//! Node faults for every Redlock kind (RLM-12/13, RLS-14/15, RLMS-15/16,
//! GAP-12, GAP-19 and the Redlock issue's fault list), by concern:
//!
//! - `outages`: a node down from the start, each node stopped and
//!   restarted in turn, two of three down, 5 nodes with two down;
//! - `paused`: a paused (SIGSTOP) node, a contender bounded by the command
//!   timeout, cancel with a hung node;
//! - `validity`: the validity rule (mock only).

pub mod outages;
pub mod paused;
pub mod validity;

use std::time::Duration;

use redsem_core::LockGuard;

use super::{gets, zranges, Kind, Losses, MUTEX_KEY};
use crate::common::node::Node;
use crate::common::scenarios::support::waiting;
use crate::common::Env;

/// Whether `node` has nothing of `kind`'s key.
fn clean(kind: Kind, node: &dyn Node) -> bool {
    match kind {
        Kind::Mutex => node.get(MUTEX_KEY).is_none(),
        _ => node.zrange(kind.key()).is_empty(),
    }
}

fn assert_clean(kind: Kind, env: &Env, what: &str) {
    for (i, node) in env.nodes.iter().enumerate() {
        assert!(
            clean(kind, &**node),
            "node {} not clean {what}: {:?} {:?}",
            i + 1,
            gets(&env.nodes),
            zranges(&env.nodes)
        );
    }
}

/// One hold of each of `holders`, in turn, reporting losses to `losses`.
async fn acquire_all(env: &Env, holders: &[Kind], losses: &Losses) -> Vec<(Kind, LockGuard)> {
    let mut guards = Vec::new();
    for &kind in holders {
        guards.push((
            kind,
            kind.lock(env.backends(), losses.t())
                .acquire()
                .await
                .unwrap(),
        ));
    }
    guards
}

/// A fresh acquire of `kind` works on every node and releases cleanly.
async fn works_again(env: &Env, kind: Kind) {
    // patient enough for a restarted real node to be reconnected
    let g = kind
        .lock(env.backends(), waiting(Duration::from_secs(3)))
        .acquire()
        .await
        .unwrap();
    env.time
        .wait_until("a fresh hold on every node", Duration::from_secs(3), || {
            env.nodes.iter().all(|n| kind.holds(&**n, g.identifier()))
        })
        .await;
    g.release().await.unwrap();
    assert_clean(kind, env, "after the final release");
}
