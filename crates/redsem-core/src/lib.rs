#![doc = include_str!("../README.md")]

mod acquire;
mod api;
mod backend;
mod background;
mod backoff;
mod callbacks;
mod clock;
mod commands;
mod driver;
mod error;
mod fenced;
mod fixed_id;
mod guard;
mod hold;
mod inspect;
mod keys;
mod lock;
mod lock_core;
mod mutex;
mod notify;
mod observe;
mod options;
mod protocol;
mod redlock;
mod replicas;
pub mod script;
mod semaphore;
mod sha1;
mod shutdown;
mod single;
mod time;
mod wait;

pub use backend::{Arg, RedisBackend, Reply};
pub use clock::Clock;
pub use driver::background_stalls;
pub use error::{
    AcquireLimit, BackendError, BackendErrorKind, LockError, LockKind, LostReason, NodeFailure,
};
pub use fenced::{FencedResource, FencedWrite};
pub use guard::{LockGuard, LockStatus};
pub use inspect::{Holder, Inspection, NodeInspection};
pub use keys::{companion_key, MUTEX_PREFIX, SEMAPHORE_PREFIX};
pub use lock::Lock;
pub use mutex::Mutex;
pub use notify::{Channels, NotificationSink, Notifications, Subscriber};
pub use options::{LockOptions, LockOptionsBuilder, LostCallback};
pub use redlock::{quorum, RedlockMultiSemaphore, RedlockMutex, RedlockSemaphore};
pub use replicas::{ReplicaAcks, ReplicaPolicy, ReplicaSync};
pub use script::Script;
pub use semaphore::{MultiSemaphore, Semaphore, MAX_LIMIT, MAX_PERMITS};
pub use shutdown::flush;

/// The workspace README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct WorkspaceReadme;
