//! Wake on release. Release scripts publish on a channel named after the
//! lock key; a backend that can subscribe hands redsem a [`Notifications`]
//! hub. Waiters of one process on one key share one subscription and wait
//! in a FIFO queue: only the head polls (at a long fallback interval), a
//! message lets the head try at once, and a newcomer joins the tail
//! instead of barging in.
//!
//! Each message is a *credit*: one try for the head. A credit left when the
//! head succeeds passes to the next head (a semaphore release can free room
//! for several). Messages lost to a dropped connection, or never sent (a
//! Node holder, an expiry), cost the fallback interval, never correctness.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::clock::Clock;
use crate::error::BackendError;
use crate::time::{sleep, within};

/// Which pub/sub commands carry release notifications.
///
/// ```
/// use redsem_core::Channels;
/// assert_eq!(Channels::Global.publish_command(), "PUBLISH");
/// assert_eq!(Channels::Sharded.publish_command(), "SPUBLISH");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Channels {
    /// `PUBLISH` / `SUBSCRIBE`: one Redis server (or a Sentinel-managed one).
    Global,
    /// `SPUBLISH` / `SSUBSCRIBE` (Redis 7+): Redis Cluster, so a message
    /// stays on the shard that owns the lock key.
    Sharded,
}

impl Channels {
    /// The command release scripts publish with.
    pub fn publish_command(self) -> &'static str {
        match self {
            Channels::Global => "PUBLISH",
            Channels::Sharded => "SPUBLISH",
        }
    }

    /// The command a subscriber listens with.
    ///
    /// ```
    /// use redsem_core::Channels;
    /// assert_eq!(Channels::Sharded.subscribe_command(), "SSUBSCRIBE");
    /// ```
    pub fn subscribe_command(self) -> &'static str {
        match self {
            Channels::Global => "SUBSCRIBE",
            Channels::Sharded => "SSUBSCRIBE",
        }
    }
}

/// What an adapter implements so its backend can offer [`Notifications`]:
/// (un)subscribing one channel on a connection that receives messages.
/// Messages themselves go to [`Notifications::notify`].
///
/// ```
/// use async_trait::async_trait;
/// use redsem_core::{BackendError, Subscriber};
///
/// #[derive(Debug)]
/// struct Nothing; // a real one sends SUBSCRIBE / UNSUBSCRIBE
///
/// #[async_trait]
/// impl Subscriber for Nothing {
///     async fn subscribe(&self, _channel: &str) -> Result<(), BackendError> { Ok(()) }
///     async fn unsubscribe(&self, _channel: &str) -> Result<(), BackendError> { Ok(()) }
/// }
/// ```
#[async_trait]
pub trait Subscriber: Send + Sync + fmt::Debug + 'static {
    /// Subscribes to `channel` (with the command of the hub's
    /// [`Channels`]); returns once Redis confirmed it.
    ///
    /// # Cancel safety
    ///
    /// redsem never drops this future before it completes or its time bound
    /// (5 s) passes.
    async fn subscribe(&self, channel: &str) -> Result<(), BackendError>;

    /// Unsubscribes from `channel`.
    ///
    /// # Cancel safety
    ///
    /// As [`subscribe`](Subscriber::subscribe).
    async fn unsubscribe(&self, channel: &str) -> Result<(), BackendError>;
}

/// A shared subscriber is one too, so an adapter can keep a handle on the
/// one it gives the hub (to hand it the hub's [`NotificationSink`]).
#[async_trait]
impl<T: Subscriber + ?Sized> Subscriber for Arc<T> {
    async fn subscribe(&self, channel: &str) -> Result<(), BackendError> {
        (**self).subscribe(channel).await
    }

    async fn unsubscribe(&self, channel: &str) -> Result<(), BackendError> {
        (**self).unsubscribe(channel).await
    }
}

/// How long a channel stays subscribed after its last waiter left, so a
/// busy key does not SUBSCRIBE and UNSUBSCRIBE on every hand-off.
const LINGER: Duration = Duration::from_secs(2);
/// Bound on one (un)subscribe call.
const CALL_BOUND: Duration = Duration::from_secs(5);
/// After a failed subscribe, waiters poll; the next try waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Release notifications on one backend: the hub between an adapter's
/// subscriber connection and redsem's waiters. Clones share the hub.
///
/// An adapter creates one per connection and returns it from
/// [`RedisBackend::notifications`](crate::RedisBackend::notifications);
/// its message loop calls [`notify`](Notifications::notify) with each
/// message's channel, and [`reset`](Notifications::reset) when the
/// subscriber connection was lost.
///
/// ```
/// # use async_trait::async_trait;
/// # use redsem_core::{BackendError, Subscriber};
/// # #[derive(Debug)] struct Nothing;
/// # #[async_trait] impl Subscriber for Nothing {
/// #   async fn subscribe(&self, _: &str) -> Result<(), BackendError> { Ok(()) }
/// #   async fn unsubscribe(&self, _: &str) -> Result<(), BackendError> { Ok(()) }
/// # }
/// use redsem_core::{Channels, Notifications};
/// let hub = Notifications::new(Channels::Global, Nothing);
/// hub.notify(b"mutex:jobs"); // no waiter: ignored
/// assert_eq!(hub.subscriptions(), 0);
/// ```
#[derive(Clone)]
pub struct Notifications {
    hub: Arc<Hub>,
}

struct Hub {
    channels: Channels,
    subscriber: Arc<dyn Subscriber>,
    keys: Mutex<HashMap<String, Channel>>,
}

#[derive(Default)]
struct Channel {
    /// Redis confirmed the subscription.
    subscribed: bool,
    /// A task is bringing `subscribed` in line with the waiters.
    reconciling: bool,
    /// No subscribe before then (after a failure).
    retry_at: Option<Instant>,
    /// Messages seen while subscribed: lets a waiter tell whether one came
    /// between its attempt and joining the queue.
    messages: u64,
    /// Tries owed to the head.
    credits: usize,
    /// Attempts made by heads of the queue: the others' proof that the head
    /// is being polled, so they need not poll Redis themselves.
    head_attempts: u64,
    /// The last attempt by a waiter of this queue: its ticket, and when.
    last_attempt: Option<(u64, Instant)>,
    next_ticket: u64,
    /// FIFO of waiters: ticket number to the waker of its task.
    waiters: BTreeMap<u64, Option<Waker>>,
    /// The clock of the locks waiting here (virtual on a mock).
    clock: Option<Clock>,
}

impl Channel {
    fn head(&self) -> Option<u64> {
        self.waiters.keys().next().copied()
    }

    fn wake_head(&mut self) {
        if let Some(Some(waker)) = self.waiters.values_mut().next().map(Option::take) {
            waker.wake();
        }
    }

    fn notified(&self) -> bool {
        self.subscribed || (self.reconciling && !self.waiters.is_empty())
    }
}

// The hub's state sits behind a mutex whose poisoning is recovered, and
// every update leaves it consistent, so a panic elsewhere cannot leave it
// half-changed: a backend holding a hub stays unwind safe.
impl std::panic::UnwindSafe for Notifications {}
impl std::panic::RefUnwindSafe for Notifications {}

impl fmt::Debug for Notifications {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifications")
            .field("channels", &self.hub.channels)
            .field("subscriptions", &self.subscriptions())
            .finish()
    }
}

impl Notifications {
    /// A hub whose subscriptions `subscriber` makes, with the pub/sub
    /// commands of `channels`.
    pub fn new(channels: Channels, subscriber: impl Subscriber) -> Self {
        Notifications {
            hub: Arc::new(Hub {
                channels,
                subscriber: Arc::new(subscriber),
                keys: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A weak handle for the adapter's message loop; see
    /// [`NotificationSink`].
    pub fn sink(&self) -> NotificationSink {
        NotificationSink {
            hub: Arc::downgrade(&self.hub),
        }
    }

    /// The pub/sub commands in use.
    ///
    /// ```
    /// # use redsem_core::{Channels, Notifications};
    /// # use redsem_core::RedisBackend;
    /// # let hub = redsem_mock::MockBackend::new().notifications().cloned().unwrap();
    /// assert_eq!(hub.channels(), Channels::Global);
    /// ```
    pub fn channels(&self) -> Channels {
        self.hub.channels
    }

    /// A message arrived on `channel`: the head waiter there may try now.
    ///
    /// ```
    /// # use redsem_core::RedisBackend;
    /// # let hub = redsem_mock::MockBackend::new().notifications().cloned().unwrap();
    /// hub.notify(b"mutex:jobs");
    /// ```
    pub fn notify(&self, channel: &[u8]) {
        let Ok(channel) = std::str::from_utf8(channel) else {
            return;
        };
        let mut keys = self.hub.lock();
        if let Some(entry) = keys.get_mut(channel) {
            entry.messages = entry.messages.wrapping_add(1);
            if !entry.waiters.is_empty() {
                entry.credits = (entry.credits + 1).min(entry.waiters.len());
                entry.wake_head();
            }
        }
    }

    /// The subscriber connection was lost (its subscriptions with it):
    /// every head tries at once, and waiters subscribe again.
    ///
    /// ```
    /// # use redsem_core::RedisBackend;
    /// # let hub = redsem_mock::MockBackend::new().notifications().cloned().unwrap();
    /// hub.reset();
    /// assert_eq!(hub.subscriptions(), 0);
    /// ```
    pub fn reset(&self) {
        let mut keys = self.hub.lock();
        let mut stale = Vec::new();
        for (channel, entry) in keys.iter_mut() {
            entry.subscribed = false;
            entry.retry_at = None;
            if !entry.waiters.is_empty() {
                entry.credits = (entry.credits + 1).min(entry.waiters.len());
                entry.wake_head();
                if !entry.reconciling {
                    let clock = entry.clock.clone().unwrap_or_else(Clock::system);
                    stale.push((channel.clone(), clock));
                }
            }
        }
        keys.retain(|_, e| e.reconciling || !e.waiters.is_empty());
        drop(keys);
        for (channel, clock) in stale {
            self.start_reconcile(&channel, &clock);
        }
    }

    /// How many channels are subscribed now.
    ///
    /// ```
    /// use redsem_core::RedisBackend;
    /// let hub = redsem_mock::MockBackend::new().notifications().cloned().unwrap();
    /// assert_eq!(hub.subscriptions(), 0);
    /// ```
    pub fn subscriptions(&self) -> usize {
        self.hub.lock().values().filter(|e| e.subscribed).count()
    }

    /// How many acquires of this process wait in the queues, over all
    /// channels (what an operator or a test looks at).
    ///
    /// ```
    /// use redsem_core::RedisBackend;
    /// let hub = redsem_mock::MockBackend::new().notifications().cloned().unwrap();
    /// assert_eq!(hub.waiters(), 0);
    /// ```
    pub fn waiters(&self) -> usize {
        self.hub.lock().values().map(|e| e.waiters.len()).sum()
    }

    /// The message count of `channel`, if it is subscribed: read before an
    /// attempt and handed to [`join`](Self::join) after it.
    pub(crate) fn messages(&self, channel: &str) -> Option<u64> {
        let keys = self.hub.lock();
        keys.get(channel)
            .filter(|e| e.subscribed)
            .map(|e| e.messages)
    }

    /// Whether waiters of this process queue on `channel`: a newcomer then
    /// joins them instead of trying first.
    pub(crate) fn has_queue(&self, channel: &str) -> bool {
        let keys = self.hub.lock();
        keys.get(channel)
            .is_some_and(|e| e.notified() && !e.waiters.is_empty())
    }

    /// Joins the queue of `channel`. `seen` is the message count read before
    /// the attempt that found the lock busy: a message since then is owed.
    pub(crate) fn join(&self, channel: &str, seen: Option<u64>, clock: &Clock) -> Ticket {
        let mut keys = self.hub.lock();
        let entry = keys.entry(channel.to_owned()).or_default();
        let id = entry.next_ticket;
        entry.next_ticket += 1;
        entry.waiters.insert(id, None);
        entry.clock = Some(clock.clone());
        if entry.subscribed && seen.is_some_and(|n| n != entry.messages) {
            entry.credits = (entry.credits + 1).min(entry.waiters.len());
        }
        let reconcile = !entry.reconciling && !entry.subscribed;
        if reconcile {
            entry.reconciling = true;
        }
        drop(keys);
        if reconcile {
            self.spawn_reconcile(channel.to_owned(), clock.clone());
        }
        Ticket {
            hub: self.clone(),
            channel: channel.to_owned(),
            id,
            seen: Seen::default(),
            clock: clock.clone(),
        }
    }

    fn start_reconcile(&self, channel: &str, clock: &Clock) {
        let mut keys = self.hub.lock();
        let entry = keys.entry(channel.to_owned()).or_default();
        if entry.reconciling {
            return;
        }
        entry.reconciling = true;
        drop(keys);
        self.spawn_reconcile(channel.to_owned(), clock.clone());
    }

    /// Brings the subscription of `channel` in line with its waiters: one
    /// task per channel at a time, so SUBSCRIBE and UNSUBSCRIBE never race.
    fn spawn_reconcile(&self, channel: String, clock: Clock) {
        let hub = self.clone();
        let Ok(driver) = crate::driver::driver() else {
            hub.hub.lock().remove(&channel);
            return;
        };
        driver.spawn(Box::pin(
            async move { hub.reconcile(&channel, &clock).await },
        ));
    }

    async fn reconcile(&self, channel: &str, clock: &Clock) {
        let subscriber = self.hub.subscriber.clone();
        loop {
            let step = {
                let mut keys = self.hub.lock();
                let Some(entry) = keys.get_mut(channel) else {
                    return;
                };
                let wanted = !entry.waiters.is_empty();
                let waiting_to_retry = entry.retry_at.is_some_and(|at| clock.now() < at);
                match (wanted, entry.subscribed) {
                    (true, false) if !waiting_to_retry => Some(true),
                    (false, true) => Some(false),
                    _ => {
                        entry.reconciling = false;
                        if !wanted && !entry.subscribed {
                            keys.remove(channel);
                        }
                        None
                    }
                }
            };
            match step {
                None => return,
                Some(true) => {
                    let done = within(clock, CALL_BOUND, subscriber.subscribe(channel)).await;
                    let mut keys = self.hub.lock();
                    let Some(entry) = keys.get_mut(channel) else {
                        return;
                    };
                    if matches!(done, Ok(Ok(()))) {
                        entry.subscribed = true;
                        // A release may have come before the subscription:
                        // the head tries once now.
                        if !entry.waiters.is_empty() {
                            entry.credits = (entry.credits + 1).min(entry.waiters.len());
                        }
                    } else {
                        entry.retry_at = clock.now().checked_add(RETRY_AFTER);
                    }
                    // The head re-reads whether it is notified.
                    entry.wake_head();
                }
                Some(false) => {
                    sleep(clock, LINGER).await;
                    if self
                        .hub
                        .lock()
                        .get(channel)
                        .is_some_and(|e| !e.waiters.is_empty())
                    {
                        continue;
                    }
                    let _ = within(clock, CALL_BOUND, subscriber.unsubscribe(channel)).await;
                    if let Some(entry) = self.hub.lock().get_mut(channel) {
                        entry.subscribed = false;
                    }
                }
            }
        }
    }
}

/// A weak handle on a [`Notifications`] hub for the adapter's message
/// loop: it delivers without keeping the hub (and so the subscriber
/// connection that owns the loop) alive.
///
/// ```
/// use redsem_core::RedisBackend;
/// let hub = redsem_mock::MockBackend::new().notifications().cloned().unwrap();
/// let sink = hub.sink();
/// sink.notify(b"mutex:jobs");
/// drop(hub);
/// sink.reset(); // the hub may be gone: a no-op then
/// ```
#[derive(Clone)]
pub struct NotificationSink {
    hub: Weak<Hub>,
}

impl fmt::Debug for NotificationSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationSink")
            .field("alive", &(self.hub.strong_count() > 0))
            .finish()
    }
}

impl NotificationSink {
    fn upgrade(&self) -> Option<Notifications> {
        self.hub.upgrade().map(|hub| Notifications { hub })
    }

    /// As [`Notifications::notify`], if the hub still exists.
    pub fn notify(&self, channel: &[u8]) {
        if let Some(hub) = self.upgrade() {
            hub.notify(channel);
        }
    }

    /// As [`Notifications::reset`], if the hub still exists.
    pub fn reset(&self) {
        if let Some(hub) = self.upgrade() {
            hub.reset();
        }
    }
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Channel>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a waiter last saw of its place: a change wakes it to re-plan.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    head: bool,
    notified: bool,
}

/// Why a waiter woke up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// A message (or a fresh subscription) owes the head a try.
    Credit,
    /// It became the head, or notifications went on or off: re-plan.
    Changed,
}

/// A place in the queue of one channel; leaving (drop) passes the head on.
pub(crate) struct Ticket {
    hub: Notifications,
    channel: String,
    id: u64,
    seen: Seen,
    clock: Clock,
}

impl Ticket {
    /// Whether it is at the head of the queue and notifications are on:
    /// what the waiter plans its fallback poll by.
    /// Subscribes again if the subscription was lost or failed and its
    /// retry is due.
    pub(crate) fn place(&mut self) -> (bool, bool) {
        let mut keys = self.hub.hub.lock();
        let Some(entry) = keys.get_mut(&self.channel) else {
            self.seen = Seen::default();
            return (false, false);
        };
        let resubscribe = !entry.subscribed
            && !entry.reconciling
            && entry.retry_at.is_none_or(|at| self.clock.now() >= at);
        entry.reconciling |= resubscribe;
        self.seen = Seen {
            head: entry.head() == Some(self.id),
            notified: entry.notified(),
        };
        drop(keys);
        if resubscribe {
            self.hub
                .spawn_reconcile(self.channel.clone(), self.clock.clone());
        }
        (self.seen.head, self.seen.notified)
    }

    /// Call right before an acquire attempt: counts it if this waiter is
    /// the head.
    pub(crate) fn attempted(&mut self) {
        let now = self.clock.now();
        let mut keys = self.hub.hub.lock();
        if let Some(entry) = keys.get_mut(&self.channel) {
            if entry.head() == Some(self.id) {
                entry.head_attempts = entry.head_attempts.wrapping_add(1);
            }
            entry.last_attempt = Some((self.id, now));
        }
    }

    /// Whether another waiter of this queue made an attempt within
    /// `window` (so one now would most likely find the same).
    pub(crate) fn others_tried_within(&self, window: Duration) -> bool {
        let keys = self.hub.hub.lock();
        let last = keys.get(&self.channel).and_then(|e| e.last_attempt);
        last.is_some_and(|(id, at)| {
            id != self.id && self.clock.now().saturating_duration_since(at) <= window
        })
    }

    /// Attempts heads of this queue have made so far.
    pub(crate) fn head_attempts(&self) -> u64 {
        let keys = self.hub.hub.lock();
        keys.get(&self.channel).map_or(0, |e| e.head_attempts)
    }

    /// Ready with a [`Turn`] when the waiter should act.
    pub(crate) fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<Turn> {
        let mut keys = self.hub.hub.lock();
        let Some(entry) = keys.get_mut(&self.channel) else {
            return Poll::Ready(Turn::Changed);
        };
        let head = entry.head() == Some(self.id);
        if head && entry.credits > 0 {
            entry.credits -= 1;
            return Poll::Ready(Turn::Credit);
        }
        let now = Seen {
            head,
            notified: entry.notified(),
        };
        if now != self.seen {
            self.seen = now;
            return Poll::Ready(Turn::Changed);
        }
        if let Some(slot) = entry.waiters.get_mut(&self.id) {
            *slot = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut keys = self.hub.hub.lock();
        let Some(entry) = keys.get_mut(&self.channel) else {
            return;
        };
        let was_head = entry.head() == Some(self.id);
        entry.waiters.remove(&self.id);
        entry.credits = entry.credits.min(entry.waiters.len());
        if was_head {
            entry.wake_head();
        }
        let idle = entry.waiters.is_empty() && entry.subscribed && !entry.reconciling;
        drop(keys);
        if idle {
            // Unsubscribe after a while unless someone waits again.
            self.hub.start_reconcile(&self.channel, &self.clock);
        }
    }
}
