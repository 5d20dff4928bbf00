//! Pausing between acquire attempts: a jittered sleep, or, where the
//! backend offers release notifications, a place in the key's queue (see
//! `notify.rs`): the head tries when a release is announced and polls
//! rarely; the others wait for their turn.

use std::future::poll_fn;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures::future::{select, Either};

use crate::backoff;
use crate::clock::Clock;
use crate::notify::{Notifications, Ticket, Turn};
use crate::time::{far_future, sleep_until};

/// With notifications on, the head of the queue still polls, this many
/// times less often than `retry_interval`: for releases nobody announces
/// (an expiry, a Node redis-semaphore holder) and lost messages.
pub(crate) const HEAD_POLL_FACTOR: u32 = 5;
/// The others check this often that the head still makes attempts, and poll
/// Redis themselves only when it made none since their last check (a task
/// that keeps its acquire future but no longer runs it): 1,000 waiters on
/// a held lock cost the head's polls, not 1,000 waiters' polls.
pub(crate) const QUEUE_POLL: Duration = Duration::from_secs(10);

/// A waiter's way of pausing, for one acquire.
pub(crate) struct Pause<'a> {
    notifications: Option<&'a Notifications>,
    channel: &'a str,
    clock: &'a Clock,
    ticket: Option<Ticket>,
    /// Message count of the channel before the last attempt.
    seen: Option<u64>,
}

impl<'a> Pause<'a> {
    pub(crate) fn new(
        notifications: Option<&'a Notifications>,
        channel: &'a str,
        clock: &'a Clock,
    ) -> Self {
        Pause {
            notifications,
            channel,
            clock,
            ticket: None,
            seen: None,
        }
    }

    /// A newcomer queues behind waiters of this process instead of trying
    /// first, so the lock goes to them in order.
    pub(crate) async fn queue_first(
        &mut self,
        retry_interval: Duration,
        deadline: Option<Instant>,
    ) {
        let Some(hub) = self.notifications else {
            return;
        };
        if hub.has_queue(self.channel) {
            self.seen = hub.messages(self.channel);
            self.ticket = Some(hub.join(self.channel, self.seen, self.clock));
            self.after_busy(retry_interval, deadline).await;
        }
    }

    /// Call right before each attempt.
    pub(crate) fn before_attempt(&mut self) {
        if let Some(hub) = self.notifications {
            self.seen = hub.messages(self.channel);
        }
        if let Some(ticket) = &mut self.ticket {
            ticket.attempted();
        }
    }

    /// After a busy answer: until a release is announced, the fallback poll
    /// is due, or `deadline` (the last attempt happens at it).
    pub(crate) async fn after_busy(&mut self, retry_interval: Duration, deadline: Option<Instant>) {
        let deadline = deadline.unwrap_or_else(far_future);
        let (Some(hub), clock) = (self.notifications, self.clock) else {
            let delay = backoff::after_busy(retry_interval);
            return self.sleep(delay, deadline).await;
        };
        let ticket = self
            .ticket
            .get_or_insert_with(|| hub.join(self.channel, self.seen, clock));
        loop {
            let place = ticket.place();
            let delay = match place {
                (_, false) => backoff::after_busy(retry_interval),
                (true, true) => {
                    backoff::after_busy(retry_interval.saturating_mul(HEAD_POLL_FACTOR))
                }
                (false, true) => backoff::after_busy(
                    QUEUE_POLL.max(retry_interval.saturating_mul(HEAD_POLL_FACTOR)),
                ),
            };
            let head_attempts = ticket.head_attempts();
            let at = clock
                .now()
                .checked_add(delay)
                .unwrap_or(deadline)
                .min(deadline);
            let turn = pin!(poll_fn(|cx| ticket.poll_turn(cx)));
            let woke = match select(turn, pin!(sleep_until(clock, at))).await {
                Either::Left((turn, _)) => Some(turn),
                Either::Right(_) => None,
            };
            match woke {
                Some(Turn::Changed) => continue,
                Some(Turn::Credit) => return,
                // Behind a head that is still trying: its polls cover us.
                None if place == (false, true)
                    && clock.now() < deadline
                    && ticket.head_attempts() != head_attempts =>
                {
                    continue
                }
                None => return,
            }
        }
    }

    /// Whether other waiters of this process are ahead in the queue.
    pub(crate) fn queued_behind(&mut self) -> bool {
        self.ticket.as_mut().is_some_and(|t| !t.place().0)
    }

    /// At the deadline: whether another waiter of this process tried within
    /// twice the head's longest poll gap (for `retry_interval`; 150 ms by
    /// default), so a last attempt of its own would most likely find the
    /// same. Not after a head that stopped trying.
    pub(crate) fn others_just_tried(&self, retry_interval: Duration) -> bool {
        let window = retry_interval.saturating_mul(HEAD_POLL_FACTOR * 3);
        self.ticket
            .as_ref()
            .is_some_and(|t| t.others_tried_within(window))
    }

    /// Sleeps `delay` (after a failure), keeping the place in the queue.
    pub(crate) async fn sleep(&self, delay: Duration, deadline: Instant) {
        let now = self.clock.now();
        sleep_until(
            self.clock,
            now.checked_add(delay).unwrap_or(deadline).min(deadline),
        )
        .await;
    }
}
