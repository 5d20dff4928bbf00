//! Lazily started, per-process helper threads. A thread is restarted when
//! the process id changes, so a child created by `fork()` (which inherits
//! none of the parent's threads) gets working ones.

use std::sync::{Arc, Mutex};

/// A value owning a helper thread, started on first use in each process.
#[derive(Debug)]
pub(crate) struct PerProcess<T> {
    slot: Mutex<Option<(u32, Arc<T>)>>,
}

impl<T> PerProcess<T> {
    pub(crate) const fn new() -> Self {
        PerProcess {
            slot: Mutex::new(None),
        }
    }

    /// The value for this process, started by `start` if there is none yet
    /// (or only the parent's, after a fork).
    pub(crate) fn get(
        &self,
        start: impl FnOnce() -> Result<Arc<T>, String>,
    ) -> Result<Arc<T>, String> {
        let pid = std::process::id();
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((owner, value)) = &*slot {
            if *owner == pid {
                return Ok(value.clone());
            }
        }
        let value = start()?;
        *slot = Some((pid, value.clone()));
        Ok(value)
    }
}
