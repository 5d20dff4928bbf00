//! [`LockCore`]: one lock instance (options, fixed-identifier slot, the
//! kind's protocol), shared by the public lock types, their acquisitions and
//! guards.

use std::fmt;
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

impl<P: ?Sized> LockCore<P> {
    /// The `Debug` of a public lock type: `Name { key, <shape>, options }`,
    /// where `shape` is what sizes the lock (limit, permits, nodes). Never
    /// the backend (so `B` need not be `Debug`) nor internal state; the
    /// options hide a fixed identifier.
    pub(crate) fn fmt_lock(
        &self,
        f: &mut fmt::Formatter<'_>,
        name: &str,
        key: &str,
        shape: &[(&str, &dyn fmt::Debug)],
    ) -> fmt::Result {
        let mut out = f.debug_struct(name);
        out.field("key", &key);
        for (field, value) in shape {
            out.field(field, value);
        }
        out.field("options", &self.options).finish()
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
