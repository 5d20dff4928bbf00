//! [`LockCore`]: one lock instance (options, fixed-identifier slot, the
//! kind's protocol), shared by the public lock types, their acquisitions and
//! guards.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::error::{AcquireLimit, BackendError, LockError};
use crate::fixed_id::FixedIdSlot;
use crate::options::LockOptions;
use crate::protocol::Protocol;

/// One lock instance. Public lock types wrap an `Arc` of this.
#[derive(Debug)]
pub(crate) struct LockCore<P: ?Sized> {
    pub(crate) options: LockOptions,
    /// Who uses the fixed identifier, if the options set one.
    pub(crate) fixed_id: Arc<FixedIdSlot>,
    /// The first acquire takes over an external hold.
    pub(crate) external_pending: AtomicBool,
    pub(crate) protocol: P,
}

pub(crate) type DynCore = LockCore<dyn Protocol>;

impl<P: Protocol> LockCore<P> {
    pub(crate) fn new(protocol: P, options: LockOptions) -> Arc<Self> {
        Arc::new(LockCore {
            external_pending: AtomicBool::new(options.acquired_externally),
            options,
            fixed_id: FixedIdSlot::new(),
            protocol,
        })
    }
}

impl DynCore {
    pub(crate) fn timeout_error(
        &self,
        limit: AcquireLimit,
        attempts: u32,
        failed_attempts: u32,
        last_error: Option<LockError>,
    ) -> LockError {
        LockError::Timeout {
            kind: self.protocol.kind(),
            key: self.protocol.key().to_owned(),
            limit,
            attempts,
            failed_attempts,
            last_error: last_error.map(Box::new),
        }
    }

    pub(crate) fn backend_error(&self, operation: &'static str, source: BackendError) -> LockError {
        LockError::Backend {
            kind: self.protocol.kind(),
            key: self.protocol.key().to_owned(),
            operation,
            source,
        }
    }

    pub(crate) fn lost_error(&self, reason: crate::LostReason) -> LockError {
        LockError::Lost {
            kind: self.protocol.kind(),
            key: self.protocol.key().to_owned(),
            reason,
        }
    }
}
