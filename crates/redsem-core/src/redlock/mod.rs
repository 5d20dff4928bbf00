//! Redlock: the same lock kinds over several independent Redis nodes, held
//! when a quorum (`n / 2 + 1`) of them agree.
//!
//! Each attempt talks to all nodes concurrently, each call bounded by the
//! command timeout, so one slow or hung node only costs its vote. An
//! operation has at most two such rounds (an acquire and the undo of a
//! failed attempt; a refresh and the re-fill of nodes that lost the hold),
//! so it never takes longer than twice the command timeout. An attempt
//! counts only if it reached quorum with validity left:
//!
//! ```text
//! validity = lock_timeout - elapsed - drift,   drift = lock_timeout / 100 + 2 ms
//! ```
//!
//! where `elapsed` runs from sending the first command. An attempt that
//! misses quorum (or validity) removes its partial holds from every node
//! before the next try.

mod fanout;
mod identity;
mod kinds;
mod quorum;

pub use kinds::{RedlockMultiSemaphore, RedlockMutex, RedlockSemaphore};
pub use quorum::quorum;
