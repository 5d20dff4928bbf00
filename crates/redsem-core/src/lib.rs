//! redsem-core (work in progress)
mod backend;
mod error;
pub mod script;
mod sha1;

pub use backend::{Arg, RedisBackend, Reply};
pub use error::{AcquireLimit, BackendError, BackendErrorKind, LockError, LockKind, LostReason, NodeFailure};
pub use script::Script;
