//! Fan-out of one call to many nodes that returns as soon as the outcome is
//! decided, leaving the slower calls to finish in the background.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

use crate::time::within;

/// The least time stragglers get after an operation is decided.
const GRACE_MIN: Duration = Duration::from_millis(2);

use crate::clock::Clock;
use crate::driver::Job;
use crate::error::{BackendError, BackendErrorKind};
use crate::time::bounded_call;

/// A call on one node: `Ok(0)` for "no", else "yes" with a value (an
/// acquire's fencing token; 1 for the others).
pub(crate) type Call = Pin<Box<dyn Future<Output = Result<u64, BackendError>> + Send>>;

/// One node's answer.
#[derive(Debug)]
pub(crate) enum Vote {
    /// With the call's value.
    Yes(u64),
    No,
    Failed(BackendError),
}

/// The answers so far: `None` for a node not yet answered (or not called).
pub(crate) type Votes = Vec<Option<Vote>>;

type Pending = FuturesUnordered<Pin<Box<dyn Future<Output = (usize, Vote)> + Send>>>;

/// Calls still in flight when a fan-out was decided.
pub(crate) struct Stragglers(Pending, Clock);

impl Stragglers {
    /// A job that lets them finish and runs `then` with each answer (for
    /// example to undo a late "yes").
    pub(crate) fn finish(
        self,
        then: impl Fn(usize, Vote) -> Option<Call> + Send + 'static,
        bound: Duration,
    ) -> Option<Job> {
        if self.0.is_empty() {
            return None;
        }
        let (mut pending, clock) = (self.0, self.1);
        Some(Box::pin(async move {
            let mut follow_ups = FuturesUnordered::new();
            while let Some((i, vote)) = pending.next().await {
                if let Some(call) = then(i, vote) {
                    follow_ups.push(bounded_call(&clock, bound, call));
                }
            }
            while follow_ups.next().await.is_some() {}
        }))
    }
}

/// Runs each `Some` call (each bounded by `bound`) concurrently until
/// `decided(&votes)` holds or all have answered.
pub(crate) async fn fan_out(
    clock: &Clock,
    calls: Vec<Option<Call>>,
    bound: Duration,
    decided: impl Fn(&Votes) -> bool,
) -> (Votes, Stragglers) {
    let mut votes: Votes = calls.iter().map(|_| None).collect();
    let pending: Pending = calls
        .into_iter()
        .enumerate()
        .filter_map(|(i, call)| call.map(|c| (i, c)))
        .map(|(i, call)| {
            let clock = clock.clone();
            let fut: Pin<Box<dyn Future<Output = (usize, Vote)> + Send>> =
                Box::pin(async move { (i, vote(&clock, bound, call).await) });
            fut
        })
        .collect();
    let mut pending = pending;
    let started = clock.now();
    while !decided(&votes) {
        match pending.next().await {
            Some((i, v)) => votes[i] = Some(v),
            None => break,
        }
    }
    // Healthy nodes answer within moments of each other: give the others
    // as long as the decision took (at least GRACE_MIN), so only calls held
    // up on a slow or hung node are left behind.
    let grace = clock
        .now()
        .saturating_duration_since(started)
        .max(GRACE_MIN)
        .min(bound);
    let _ = within(clock, grace, async {
        while let Some((i, v)) = pending.next().await {
            votes[i] = Some(v);
        }
    })
    .await;
    (votes, Stragglers(pending, clock.clone()))
}

async fn vote(clock: &Clock, bound: Duration, call: Call) -> Vote {
    match bounded_call(clock, bound, call).await {
        Ok(0) => Vote::No,
        Ok(value) => Vote::Yes(value),
        Err(e) if e.kind() == BackendErrorKind::Timeout => Vote::Failed(BackendError::new(
            BackendErrorKind::Timeout,
            format!("timed out after {bound:?}"),
        )),
        Err(e) => Vote::Failed(e),
    }
}

/// Counts of the answers so far.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub(crate) yes: usize,
    pub(crate) no: usize,
    pub(crate) failed: usize,
    /// Failures that retrying cannot fix (a permission or type error).
    pub(crate) fatal: usize,
    /// Nodes called that have not answered yet.
    pub(crate) pending: usize,
}

impl Tally {
    pub(crate) fn of(votes: &Votes) -> Tally {
        let mut t = Tally {
            pending: votes.iter().filter(|v| v.is_none()).count(),
            ..Tally::default()
        };
        for vote in votes.iter().flatten() {
            match vote {
                Vote::Yes(_) => t.yes += 1,
                Vote::No => t.no += 1,
                Vote::Failed(e) => {
                    t.failed += 1;
                    if !e.is_retryable() {
                        t.fatal += 1;
                    }
                }
            }
        }
        t
    }
}
