//! Redlock's check that its nodes are distinct servers: two backends that
//! reach the same server would count one server's vote twice (a false
//! quorum).

use std::sync::Mutex;
use std::time::Duration;

use futures::future::join_all;

use crate::backend::RedisBackend;
use crate::clock::Clock;
use crate::error::LockError;
use crate::time::bounded_call;

/// What is known of one node's server.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    /// Not asked yet, or the last ask failed in a way worth retrying.
    Unknown,
    /// Its `run_id`.
    Id(String),
    /// The backend cannot tell (no `INFO` permission, a custom backend).
    Unverifiable,
}

/// The server identities of a Redlock's nodes, learned once each.
#[derive(Debug)]
pub(crate) struct NodeIdentities {
    known: Mutex<Vec<Known>>,
}

impl NodeIdentities {
    pub(crate) fn new(nodes: usize) -> Self {
        NodeIdentities {
            known: Mutex::new(vec![Known::Unknown; nodes]),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Known>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Learns the identities of the `answered` nodes not known yet (one
    /// round trip, in parallel, the first time; they just answered, so a
    /// hung node is never waited for) and fails if two nodes are the same
    /// server.
    pub(crate) async fn check<B: RedisBackend>(
        &self,
        clock: &Clock,
        nodes: &[B],
        answered: &[usize],
        bound: Duration,
    ) -> Result<(), LockError> {
        let unknown: Vec<usize> = {
            let known = self.lock();
            answered
                .iter()
                .copied()
                .filter(|&i| known[i] == Known::Unknown)
                .collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        let answers = join_all(
            unknown
                .iter()
                .map(|&i| bounded_call(clock, bound, nodes[i].server_id())),
        )
        .await;
        let mut known = self.lock();
        for (&i, answer) in unknown.iter().zip(answers) {
            known[i] = match answer {
                Ok(Some(id)) => Known::Id(id),
                Ok(None) => Known::Unverifiable,
                // A node that is down now is asked again next time.
                Err(e) if e.is_retryable() => Known::Unknown,
                Err(_) => Known::Unverifiable,
            };
        }
        for (i, a) in known.iter().enumerate() {
            let Known::Id(id) = a else { continue };
            if let Some(j) = (i + 1..known.len()).find(|&j| known[j] == *a) {
                return Err(LockError::InvalidOption {
                    option: "nodes",
                    reason: format!(
                        "node {} and node {} reach the same Redis server (run_id {id}); \
                         Redlock counts each node as an independent vote, so give it \
                         distinct servers",
                        i + 1,
                        j + 1
                    ),
                });
            }
        }
        Ok(())
    }
}
