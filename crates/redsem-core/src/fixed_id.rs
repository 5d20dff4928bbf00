//! A lock instance's fixed identifier: used by at most one acquisition at a
//! time, and not reused while a clean-up under it may still reach Redis.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

/// Who has the identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    Free,
    /// An acquire in progress, or a guard.
    InUse,
    /// A background release or clean-up under it has not finished; a new
    /// acquire waits for it.
    CleaningUp,
}

#[derive(Debug)]
struct SlotState {
    owner: Owner,
    waiters: Vec<Waker>,
}

/// The slot of one lock instance.
#[derive(Debug)]
pub(crate) struct FixedIdSlot {
    state: Mutex<SlotState>,
}

impl FixedIdSlot {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(FixedIdSlot {
            state: Mutex::new(SlotState {
                owner: Owner::Free,
                waiters: Vec::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the identifier if it is free; otherwise says who has it and,
    /// while it is being cleaned up, wakes `waker` when that ends.
    pub(crate) fn try_claim(self: &Arc<Self>, waker: &Waker) -> Result<FixedIdClaim, Owner> {
        let mut st = self.lock();
        match st.owner {
            Owner::Free => {
                st.owner = Owner::InUse;
                Ok(FixedIdClaim(Some(self.clone())))
            }
            Owner::CleaningUp => {
                if !st.waiters.iter().any(|w| w.will_wake(waker)) {
                    st.waiters.push(waker.clone());
                }
                Err(Owner::CleaningUp)
            }
            Owner::InUse => Err(Owner::InUse),
        }
    }
}

/// Ownership of the fixed identifier (or of nothing, for random ones). It
/// travels with the acquisition: acquire → hold → background release; the
/// identifier is free again when the claim is dropped.
#[derive(Debug)]
pub(crate) struct FixedIdClaim(Option<Arc<FixedIdSlot>>);

impl FixedIdClaim {
    /// The claim of an acquisition with a random identifier.
    pub(crate) fn none() -> Self {
        FixedIdClaim(None)
    }

    /// Moves the claim out, leaving an empty one.
    pub(crate) fn take(&mut self) -> FixedIdClaim {
        FixedIdClaim(self.0.take())
    }

    /// From now on a new acquire waits for this claim instead of failing
    /// with `AlreadyHeld`: the guard is gone, only its clean-up is left.
    pub(crate) fn cleaning_up(&self) {
        if let Some(slot) = &self.0 {
            slot.lock().owner = Owner::CleaningUp;
        }
    }
}

impl Drop for FixedIdClaim {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            let waiters = {
                let mut st = slot.lock();
                st.owner = Owner::Free;
                std::mem::take(&mut st.waiters)
            };
            waiters.into_iter().for_each(Waker::wake);
        }
    }
}
