//! The Redlock protocol: fan out to every node, count votes, keep validity.

use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::join_all;

use crate::backend::RedisBackend;
use crate::commands::Commands;
use crate::error::{BackendError, BackendErrorKind, LockError, LockKind, LostReason, NodeFailure};
use crate::protocol::{Protocol, Refreshed};
use crate::time::bounded_call;

/// Votes needed among `nodes`: `nodes / 2 + 1`.
///
/// ```
/// assert_eq!((1..=9).map(redsem_core::quorum).collect::<Vec<_>>(), [1, 2, 2, 3, 3, 4, 4, 5, 5]);
/// ```
pub fn quorum(nodes: usize) -> usize {
    nodes / 2 + 1
}

/// The clock-drift allowance subtracted from every Redlock validity.
pub(crate) fn drift(ttl_ms: u64) -> Duration {
    Duration::from_millis(ttl_ms / 100 + 2)
}

/// `C`'s commands on every node of `nodes`.
#[derive(Debug)]
pub(crate) struct Redlock<C, B> {
    pub(crate) commands: C,
    pub(crate) nodes: Vec<B>,
    pub(crate) kind: LockKind,
}

/// One node's answer to one call.
enum Vote {
    Yes,
    No,
    Failed(String),
}

impl<C: Commands, B: RedisBackend + 'static> Redlock<C, B> {
    /// Runs `call` at once on every node `pick` selects (by index and its
    /// earlier vote), each bounded by `bound`; unpicked nodes vote `No`.
    async fn poll<'a, F, Fut>(
        &'a self,
        bound: Duration,
        pick: impl Fn(usize) -> bool,
        call: F,
    ) -> Vec<Vote>
    where
        F: Fn(&'a B) -> Fut,
        Fut: Future<Output = Result<bool, BackendError>> + 'a,
    {
        join_all(self.nodes.iter().enumerate().map(|(i, node)| {
            let fut = pick(i).then(|| call(node));
            async move {
                let Some(fut) = fut else { return Vote::No };
                match bounded_call(bound, fut).await {
                    Ok(true) => Vote::Yes,
                    Ok(false) => Vote::No,
                    Err(e) if e.kind() == BackendErrorKind::Timeout => {
                        Vote::Failed(format!("timed out after {bound:?}"))
                    }
                    Err(e) => Vote::Failed(e.to_string()),
                }
            }
        }))
        .await
    }

    /// Runs `call` on every node at once.
    async fn poll_all<'a, F, Fut>(&'a self, bound: Duration, call: F) -> Vec<Vote>
    where
        F: Fn(&'a B) -> Fut,
        Fut: Future<Output = Result<bool, BackendError>> + 'a,
    {
        self.poll(bound, |_| true, call).await
    }

    fn quorum(&self) -> usize {
        quorum(self.nodes.len())
    }

    fn tally(votes: &[Vote], no: &str) -> (usize, Vec<NodeFailure>, bool) {
        let mut yes = 0;
        let mut failures = Vec::new();
        let mut errored = false;
        for (i, vote) in votes.iter().enumerate() {
            match vote {
                Vote::Yes => yes += 1,
                Vote::No => failures.push(NodeFailure {
                    node: i + 1,
                    reason: no.to_owned(),
                }),
                Vote::Failed(reason) => {
                    errored = true;
                    failures.push(NodeFailure {
                        node: i + 1,
                        reason: reason.clone(),
                    });
                }
            }
        }
        (yes, failures, errored)
    }

    fn quorum_error(
        &self,
        operation: &'static str,
        succeeded: usize,
        failures: Vec<NodeFailure>,
    ) -> LockError {
        LockError::QuorumNotReached {
            kind: self.kind,
            key: self.commands.key().to_owned(),
            operation,
            succeeded,
            total: self.nodes.len(),
            quorum: self.quorum(),
            failures,
        }
    }

    /// Removes `id`'s hold, best effort, from the nodes whose `votes` say
    /// they may hold some of it (`skip_no`: a `No` vote on acquire means the
    /// node took nothing).
    async fn undo(&self, id: &str, bound: Duration, votes: &[Vote], skip_no: bool) {
        let pick = |i: usize| !(skip_no && matches!(votes[i], Vote::No));
        self.poll(bound, pick, |node| self.commands.release(node, id))
            .await;
    }

    /// When a quorum confirmed at `started` runs out, or `None` if the
    /// attempt took so long that no validity is left.
    fn validity(started: Instant, ttl_ms: u64) -> Option<Instant> {
        let usable = Duration::from_millis(ttl_ms).checked_sub(drift(ttl_ms))?;
        let until = started
            .checked_add(usable)
            .unwrap_or_else(crate::time::far_future);
        (Instant::now() < until).then_some(until)
    }
}

#[async_trait]
impl<C: Commands, B: RedisBackend + 'static> Protocol for Redlock<C, B> {
    fn kind(&self) -> LockKind {
        self.kind
    }

    fn key(&self) -> &str {
        self.commands.key()
    }

    async fn acquire(
        &self,
        id: &str,
        ttl_ms: u64,
        started: Instant,
        bound: Duration,
    ) -> Result<Option<Instant>, LockError> {
        let votes = self
            .poll_all(bound, |node| self.commands.acquire(node, id, ttl_ms))
            .await;
        let (yes, failures, errored) = Self::tally(&votes, "is held by another holder");
        let quorum = yes >= self.quorum();
        if quorum {
            if let Some(until) = Self::validity(started, ttl_ms) {
                return Ok(Some(until));
            }
        }
        // Partial holds (including on nodes whose call failed, which may
        // have run late) must not linger until their TTL.
        if yes > 0 || errored {
            self.undo(id, bound, &votes, true).await;
        }
        if errored && !quorum {
            Err(self.quorum_error("acquired", yes, failures))
        } else {
            // Busy, or a quorum that came too late to leave any validity.
            Ok(None)
        }
    }

    async fn refresh(
        &self,
        id: &str,
        ttl_ms: u64,
        started: Instant,
        bound: Duration,
    ) -> Result<Refreshed, BackendError> {
        let votes = self
            .poll_all(bound, |node| self.commands.refresh(node, id, ttl_ms))
            .await;
        let (yes, _, _) = Self::tally(&votes, "");
        let valid_until = if yes >= self.quorum() {
            Self::validity(started, ttl_ms)
        } else {
            None
        };
        let Some(valid_until) = valid_until else {
            self.undo(id, bound, &votes, false).await;
            return Ok(Refreshed::Lost(LostReason::QuorumLost {
                confirmed: yes,
                quorum: self.quorum(),
            }));
        };
        // Give the hold back to nodes that answered without it (a restarted
        // node). Nodes that failed or hung are left alone: another call
        // would only wait for them again.
        if votes.iter().any(|v| matches!(v, Vote::No)) {
            let pick = |i: usize| matches!(votes[i], Vote::No);
            self.poll(bound, pick, |node| self.commands.acquire(node, id, ttl_ms))
                .await;
        }
        Ok(Refreshed::Extended { valid_until })
    }

    async fn release(&self, id: &str, bound: Duration) -> Result<bool, LockError> {
        let votes = self
            .poll_all(bound, |node| self.commands.release(node, id))
            .await;
        let (yes, failures, errored) = Self::tally(&votes, "no longer held it");
        if yes >= self.quorum() {
            Ok(true)
        } else if errored {
            Err(self.quorum_error("released", yes, failures))
        } else {
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_a_strict_majority() {
        let q: Vec<usize> = (1..=9).map(quorum).collect();
        assert_eq!(q, [1, 2, 2, 3, 3, 4, 4, 5, 5]);
    }

    #[test]
    fn drift_is_one_percent_plus_two_ms() {
        assert_eq!(drift(10_000), Duration::from_millis(102));
        assert_eq!(drift(300), Duration::from_millis(5));
    }
}
