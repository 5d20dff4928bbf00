//! The Redlock protocol: fan out to every node, count votes, keep validity.
//!
//! Every operation returns as soon as its outcome is decided (a quorum
//! reached, or made impossible); calls still in flight on slow nodes finish
//! in the background, undoing a late "yes" of a failed attempt. A node error
//! is "unknown", never "no": a refresh reports the lock lost only when the
//! "no" answers alone make a quorum impossible.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::backend::RedisBackend;
use crate::clock::Clock;
use crate::commands::{Commands, FenceMode};
use crate::driver::Job;
use crate::error::{LockError, LockKind, LostReason, NodeFailure};
use crate::protocol::{validity, Granted, Leftover, Protocol, Refreshed, Retry, StillHeld};
use crate::redlock::fanout::{fan_out, Call, Stragglers, Tally, Vote, Votes};
use crate::redlock::identity::NodeIdentities;
use crate::single::too_slow;
use crate::time::{bounded_call, sleep_until};

/// Votes needed among `nodes`: `nodes / 2 + 1`.
///
/// ```
/// assert_eq!((1..=9).map(redsem_core::quorum).collect::<Vec<_>>(), [1, 2, 2, 3, 3, 4, 4, 5, 5]);
/// ```
pub fn quorum(nodes: usize) -> usize {
    nodes / 2 + 1
}

/// `C`'s commands on every node of `nodes`.
#[derive(Debug)]
pub(crate) struct Redlock<C, B> {
    pub(crate) commands: Arc<C>,
    pub(crate) nodes: Arc<Vec<B>>,
    pub(crate) kind: LockKind,
    pub(crate) identities: NodeIdentities,
    /// The first node's clock: every timer of the lock follows it.
    pub(crate) clock: Clock,
    /// The highest fencing token this lock has seen: acquires ask the
    /// nodes for more, so their counters converge.
    seen: AtomicU64,
}

impl<C: Commands, B: RedisBackend> Redlock<C, B> {
    pub(crate) fn new(commands: C, nodes: Vec<B>, kind: LockKind) -> Self {
        Redlock {
            commands: Arc::new(commands),
            identities: NodeIdentities::new(nodes.len()),
            clock: nodes
                .first()
                .map_or_else(Clock::system, RedisBackend::clock),
            nodes: Arc::new(nodes),
            kind,
            seen: AtomicU64::new(0),
        }
    }
}

/// What to run on a node.
#[derive(Clone)]
enum Op {
    /// Identifier, lock timeout, token floor.
    Acquire(Arc<str>, u64, u64),
    Refresh(Arc<str>, u64),
    Release(Arc<str>),
    /// Identifier, target token, mode.
    Fence(Arc<str>, u64, FenceMode),
}

/// Calls `op` on the nodes `pick` selects; `None` for the others.
fn calls<C: Commands, B: RedisBackend + 'static>(
    commands: &Arc<C>,
    nodes: &Arc<Vec<B>>,
    op: &Op,
    pick: impl Fn(usize) -> bool,
) -> Vec<Option<Call>> {
    (0..nodes.len())
        .map(|i| pick(i).then(|| call(commands.clone(), nodes.clone(), i, op.clone())))
        .collect()
}

fn call<C: Commands, B: RedisBackend + 'static>(
    commands: Arc<C>,
    nodes: Arc<Vec<B>>,
    i: usize,
    op: Op,
) -> Call {
    Box::pin(async move {
        let node = &nodes[i];
        match op {
            Op::Acquire(id, ttl, floor) => commands.acquire(node, &id, ttl, floor).await,
            Op::Refresh(id, ttl) => commands.refresh(node, &id, ttl).await.map(u64::from),
            Op::Release(id) => commands.release(node, &id).await.map(u64::from),
            Op::Fence(id, target, mode) => commands
                .fence(node, &id, target, mode)
                .await
                .map(|reply| u64::try_from(reply).unwrap_or(0)),
        }
    })
}

/// Joins the leftover jobs into one.
fn join(jobs: impl IntoIterator<Item = Option<Job>>) -> Leftover {
    let jobs: Vec<Job> = jobs.into_iter().flatten().collect();
    if jobs.is_empty() {
        return None;
    }
    Some(Box::pin(async move {
        futures::future::join_all(jobs).await;
    }))
}

/// Releases `id` on the nodes in `retry` until each has answered or
/// `deadline` passes; returns the final votes of those nodes.
async fn release_until<C: Commands, B: RedisBackend + 'static>(
    commands: Arc<C>,
    nodes: Arc<Vec<B>>,
    id: Arc<str>,
    mut votes: Votes,
    bound: Duration,
    retry: Retry,
    stop: impl Fn(&Votes) -> bool,
) -> Votes {
    let mut failures = 0;
    loop {
        let failed: Vec<usize> = (0..votes.len())
            .filter(|&i| matches!(votes[i], Some(Vote::Failed(_))))
            .collect();
        if failed.is_empty() || stop(&votes) {
            return votes;
        }
        failures += 1;
        let Some(at) = retry.next_try(failures, bound) else {
            return votes;
        };
        sleep_until(&retry.clock, at).await;
        let again = calls(&commands, &nodes, &Op::Release(id.clone()), |i| {
            failed.contains(&i)
        });
        let (answers, _) = fan_out(&retry.clock, again, retry.bound(bound), |_| false).await;
        for (i, answer) in answers.into_iter().enumerate() {
            // A retried node's "not there" most likely means the failed
            // call removed it: it counts as released, not as lost.
            match answer {
                Some(Vote::No) => votes[i] = Some(Vote::Yes(1)),
                Some(vote) => votes[i] = Some(vote),
                None => {}
            }
        }
    }
}

impl<C: Commands, B: RedisBackend + 'static> Redlock<C, B> {
    fn quorum(&self) -> usize {
        quorum(self.nodes.len())
    }

    /// "no" answers beyond this make a quorum impossible.
    fn spare(&self) -> usize {
        self.nodes.len() - self.quorum()
    }

    fn calls(&self, op: &Op, pick: impl Fn(usize) -> bool) -> Vec<Option<Call>> {
        calls(&self.commands, &self.nodes, op, pick)
    }

    fn failures(votes: &Votes, no: &str) -> Vec<NodeFailure> {
        votes
            .iter()
            .enumerate()
            .filter_map(|(i, vote)| {
                let (reason, retryable) = match vote {
                    Some(Vote::Yes(_)) => return None,
                    Some(Vote::No) => (no.to_owned(), true),
                    Some(Vote::Failed(e)) => (e.to_string(), e.is_retryable()),
                    None => ("had not answered yet".to_owned(), true),
                };
                Some(NodeFailure {
                    node: i + 1,
                    reason,
                    retryable,
                })
            })
            .collect()
    }

    fn quorum_error(&self, operation: &'static str, votes: &Votes, no: &str) -> LockError {
        LockError::QuorumNotReached {
            kind: self.kind,
            key: self.commands.key().to_owned(),
            operation,
            succeeded: Tally::of(votes).yes,
            total: self.nodes.len(),
            quorum: self.quorum(),
            failures: Self::failures(votes, no),
        }
    }

    /// The fencing token of a hold that a quorum of `votes` say "yes" to,
    /// each with the value its node's counter was set to: the highest value
    /// `top`, once a quorum of the nodes holding it have their counter set
    /// to exactly `top` by this holder (the others are raised to it, if no
    /// one got there first). A value is set once per node, and any two
    /// quorums share a node, so no two holders confirm the same token, and
    /// a later holder's quorum meets a counter already at `top`: tokens
    /// only grow. `Ok(None)` when another holder got `top` first.
    async fn confirm(
        &self,
        id: &Arc<str>,
        votes: &Votes,
        bound: Duration,
    ) -> (Result<Option<u64>, LockError>, Leftover) {
        let values: Vec<Option<u64>> = votes
            .iter()
            .map(|v| match v {
                Some(Vote::Yes(value)) => Some(*value),
                _ => None,
            })
            .collect();
        let Some(top) = values.iter().flatten().copied().max() else {
            return (Ok(None), None);
        };
        self.seen.fetch_max(top, Ordering::Relaxed);
        let at_top = values.iter().filter(|v| **v == Some(top)).count();
        let q = self.quorum();
        if at_top >= q {
            return (Ok(Some(top)), None);
        }
        let need = q - at_top;
        let below = values.iter().flatten().filter(|v| **v < top).count();
        let raise = Op::Fence(id.clone(), top, FenceMode::Raise);
        let calls = self.calls(&raise, |i| values[i].is_some_and(|v| v < top));
        let (raised, stragglers) = fan_out(&self.clock, calls, bound, |v| {
            let t = Tally::of(v);
            t.yes >= need || t.no + t.failed > below - need
        })
        .await;
        let t = Tally::of(&raised);
        let result = if t.yes >= need {
            Ok(Some(top))
        } else if t.no > 0 {
            Ok(None)
        } else {
            let no = "had a newer fencing token";
            Err(self.quorum_error("given a fencing token", &raised, no))
        };
        (result, stragglers.finish(|_, _| None, bound))
    }

    /// Undoes `id` on every node whose vote says it may hold some of it
    /// (a "yes" or a failure), and on stragglers that answer so later.
    fn undo(
        &self,
        id: &Arc<str>,
        votes: &Votes,
        stragglers: Stragglers,
        bound: Duration,
    ) -> Leftover {
        let release = Op::Release(id.clone());
        let may_hold = |v: &Option<Vote>| matches!(v, Some(Vote::Yes(_) | Vote::Failed(_)));
        let now = self.calls(&release, |i| may_hold(&votes[i]));
        let (commands, nodes) = (self.commands.clone(), self.nodes.clone());
        let late = stragglers.finish(
            move |i, vote| {
                may_hold(&Some(vote))
                    .then(|| call(commands.clone(), nodes.clone(), i, release.clone()))
            },
            bound,
        );
        let clock = self.clock.clone();
        let now: Option<Job> = now.iter().any(Option::is_some).then(|| {
            let job: Job = Box::pin(async move {
                fan_out(&clock, now, bound, |_| false).await;
            });
            job
        });
        join([now, late])
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

    fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The first node's: every release publishes on each node, so one
    /// subscription hears them; while it is down, waiters poll.
    fn notifications(&self) -> Option<&crate::Notifications> {
        self.nodes.first()?.notifications()
    }

    async fn acquire(
        &self,
        id: &str,
        ttl_ms: u64,
        started: Instant,
        bound: Duration,
    ) -> (Result<Option<Granted>, LockError>, Leftover) {
        let (q, spare) = (self.quorum(), self.spare());
        let id: Arc<str> = id.into();
        let floor = self.seen.load(Ordering::Relaxed).saturating_add(1);
        let all = self.calls(&Op::Acquire(id.clone(), ttl_ms, floor), |_| true);
        let clock = &self.clock;
        let (votes, stragglers) = fan_out(clock, all, bound, |v| {
            let t = Tally::of(v);
            // Busy or unreachable for sure; a mix of "held" and failures
            // waits for every answer, which may still tell them apart.
            t.yes >= q
                || t.no > spare
                || t.failed > spare
                || (t.no + t.failed > spare && t.pending == 0)
        })
        .await;
        // Two answers from one server would be a false quorum.
        let answered: Vec<usize> = (0..votes.len())
            .filter(|&i| matches!(votes[i], Some(Vote::Yes(_) | Vote::No)))
            .collect();
        if let Err(e) = self
            .identities
            .check(clock, &self.nodes, &answered, bound)
            .await
        {
            return (Err(e), self.undo(&id, &votes, stragglers, bound));
        }
        let t = Tally::of(&votes);
        if t.yes >= q {
            let (token, raises) = self.confirm(&id, &votes, bound).await;
            let leftover =
                |stragglers: Stragglers| join([raises, stragglers.finish(|_, _| None, bound)]);
            match (token, validity(clock, started, ttl_ms)) {
                (Ok(Some(token)), Some(valid_until)) => {
                    let granted = Granted {
                        valid_until,
                        token,
                        replicas: None,
                    };
                    return (Ok(Some(granted)), leftover(stragglers));
                }
                // Another holder got the same token on an overlapping
                // node first: as good as busy; the next try asks for more.
                (Ok(None), _) => return (Ok(None), self.undo(&id, &votes, stragglers, bound)),
                (Err(e), _) => return (Err(e), self.undo(&id, &votes, stragglers, bound)),
                // A quorum that came too late to leave any validity.
                (Ok(Some(_)), None) => {}
            }
        }
        let leftover = self.undo(&id, &votes, stragglers, bound);
        let result = if t.yes >= q {
            Err(LockError::Backend {
                kind: self.kind,
                key: self.commands.key().to_owned(),
                operation: "acquire",
                source: too_slow(clock, started),
            })
        } else if t.no > spare {
            Ok(None) // busy
        } else {
            Err(self.quorum_error("acquired", &votes, "is held by another holder"))
        };
        (result, leftover)
    }

    async fn issue_token(
        &self,
        id: &str,
        bound: Duration,
    ) -> (Result<Option<u64>, LockError>, Leftover) {
        let (q, spare) = (self.quorum(), self.spare());
        let id: Arc<str> = id.into();
        let target = self.seen.load(Ordering::Relaxed).saturating_add(1);
        let issue = Op::Fence(id.clone(), target, FenceMode::Issue);
        let (votes, stragglers) = fan_out(&self.clock, self.calls(&issue, |_| true), bound, |v| {
            let t = Tally::of(v);
            t.yes >= q || t.no + t.failed > spare
        })
        .await;
        let t = Tally::of(&votes);
        let (result, raises) = if t.yes >= q {
            self.confirm(&id, &votes, bound).await
        } else if t.no > spare {
            (Ok(None), None) // the hold is gone
        } else {
            let no = "no longer held it";
            (
                Err(self.quorum_error("given a fencing token", &votes, no)),
                None,
            )
        };
        (
            result,
            join([raises, stragglers.finish(|_, _| None, bound)]),
        )
    }

    async fn refresh(
        &self,
        id: &str,
        ttl_ms: u64,
        started: Instant,
        bound: Duration,
        still_held: StillHeld,
    ) -> (Result<Refreshed, LockError>, Leftover) {
        let (q, spare) = (self.quorum(), self.spare());
        let id: Arc<str> = id.into();
        let all = self.calls(&Op::Refresh(id.clone(), ttl_ms), |_| true);
        let clock = &self.clock;
        let (votes, stragglers) = fan_out(clock, all, bound, |v| {
            let t = Tally::of(v);
            t.yes >= q || t.no + t.failed > spare
        })
        .await;
        let t = Tally::of(&votes);
        if t.yes >= q {
            let Some(valid_until) = validity(clock, started, ttl_ms) else {
                let err = LockError::Backend {
                    kind: self.kind,
                    key: self.commands.key().to_owned(),
                    operation: "refresh",
                    source: too_slow(clock, started),
                };
                return (Err(err), stragglers.finish(|_, _| None, bound));
            };
            // Give the hold back to nodes that answered without it (a
            // restarted node). They answered, so this is quick; it is
            // awaited so that no re-fill can land after a release. A
            // straggler that answers "not held" later is re-filled only
            // while the hold is still held.
            let floor = self.seen.load(Ordering::Relaxed);
            let acquire = Op::Acquire(id.clone(), ttl_ms, floor);
            let refill = self.calls(&acquire, |i| matches!(votes[i], Some(Vote::No)));
            if refill.iter().any(Option::is_some) {
                fan_out(clock, refill, bound, |_| false).await;
            }
            let (commands, nodes) = (self.commands.clone(), self.nodes.clone());
            let leftover = stragglers.finish(
                move |i, vote| {
                    if !matches!(vote, Vote::No) {
                        return None;
                    }
                    let refill = call(commands.clone(), nodes.clone(), i, acquire.clone());
                    let still_held = still_held.clone();
                    Some(Box::pin(async move {
                        if !still_held() {
                            return Ok(0);
                        }
                        refill.await
                    }) as Call)
                },
                bound,
            );
            let extended = Refreshed::Extended {
                valid_until,
                replicas: None,
            };
            return (Ok(extended), leftover);
        }
        if t.no > spare {
            // Gone for good: clean up what is left of it.
            let leftover = self.undo(&id, &votes, stragglers, bound);
            let lost = LostReason::QuorumLost {
                confirmed: t.yes,
                quorum: q,
            };
            return (Ok(Refreshed::Lost(lost)), leftover);
        }
        // Errors kept the quorum from being confirmed: unknown, not lost.
        let err = self.quorum_error("refreshed", &votes, "no longer held it");
        (Err(err), stragglers.finish(|_, _| None, bound))
    }

    async fn foreign_data(&self, bound: Duration) -> Option<String> {
        let checks = self
            .nodes
            .iter()
            .map(|node| crate::time::within(&self.clock, bound, self.commands.foreign_data(node)));
        let found = futures::future::join_all(checks).await;
        let nodes: Vec<String> = found
            .into_iter()
            .enumerate()
            .filter_map(|(i, f)| Some(format!("node {} holds a {}", i + 1, f.ok()??)))
            .collect();
        (!nodes.is_empty())
            .then(|| format!("the key is not a lock on every node: {}", nodes.join(", ")))
    }

    async fn inspect(
        &self,
        lock_timeout_ms: u64,
        bound: Duration,
    ) -> Vec<Result<crate::inspect::NodeInspection, crate::BackendError>> {
        let key = self.commands.key();
        let reads = self.nodes.iter().map(|node| {
            bounded_call(
                &self.clock,
                bound,
                crate::inspect::inspect_node(node, key, lock_timeout_ms),
            )
        });
        futures::future::join_all(reads).await
    }

    async fn release(
        &self,
        id: &str,
        bound: Duration,
        retry: Retry,
    ) -> (Result<bool, LockError>, Leftover) {
        let (q, spare) = (self.quorum(), self.spare());
        let id: Arc<str> = id.into();
        let decided = move |v: &Votes| {
            let t = Tally::of(v);
            t.yes >= q || t.no > spare
        };
        let all = self.calls(&Op::Release(id.clone()), |_| true);
        let (votes, stragglers) = fan_out(&self.clock, all, bound, |v| {
            decided(v) || v.iter().all(Option::is_some)
        })
        .await;
        let (commands, nodes) = (self.commands.clone(), self.nodes.clone());
        let votes = release_until(
            commands,
            nodes,
            id.clone(),
            votes,
            bound,
            retry.clone(),
            decided,
        )
        .await;
        let t = Tally::of(&votes);
        // Nodes that failed are retried, and stragglers finished, in the
        // background until the hold would expire anyway.
        let (commands, nodes) = (self.commands.clone(), self.nodes.clone());
        let failed: Votes = votes
            .iter()
            .map(|v| match v {
                Some(Vote::Failed(e)) => Some(Vote::Failed(crate::BackendError::new(
                    e.kind(),
                    e.message(),
                ))),
                _ => Some(Vote::Yes(1)),
            })
            .collect();
        let retry: Option<Job> = (t.failed > 0).then(|| {
            let job: Job = Box::pin(async move {
                release_until(commands, nodes, id, failed, bound, retry, |_| false).await;
            });
            job
        });
        let leftover = join([retry, stragglers.finish(|_, _| None, bound)]);
        let result = if t.yes >= q {
            Ok(true)
        } else if t.no > spare {
            Ok(false)
        } else {
            Err(self.quorum_error("released", &votes, "no longer held it"))
        };
        (result, leftover)
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
}
