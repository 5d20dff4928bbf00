//! The acquire loop shared by every lock kind, and the per-instance state
//! behind the public lock types.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::future::{select, Either};

use crate::driver::driver;
use crate::error::{AcquireLimit, BackendError, LockError};
use crate::guard::LockGuard;
use crate::hold::Hold;
use crate::options::{Identity, LockOptions};
use crate::protocol::{Protocol, Refreshed};
use crate::time::sleep_until;

/// One lock instance: its options, its fixed-identifier bookkeeping and its
/// kind's protocol. Public lock types wrap an `Arc` of this.
#[derive(Debug)]
pub(crate) struct LockCore<P: ?Sized> {
    pub(crate) options: LockOptions,
    /// Set while a hold under the fixed identifier exists.
    fixed_id_in_use: AtomicBool,
    /// The first acquire takes over an external hold.
    external_pending: AtomicBool,
    pub(crate) protocol: P,
}

pub(crate) type DynCore = LockCore<dyn Protocol>;

impl<P: Protocol> LockCore<P> {
    pub(crate) fn new(protocol: P, options: LockOptions) -> Arc<Self> {
        Arc::new(LockCore {
            external_pending: AtomicBool::new(options.acquired_externally),
            options,
            fixed_id_in_use: AtomicBool::new(false),
            protocol,
        })
    }
}

impl DynCore {
    pub(crate) fn release_fixed_id(&self) {
        self.fixed_id_in_use.store(false, Ordering::Release);
    }

    fn timeout_error(
        &self,
        limit: AcquireLimit,
        attempts: u32,
        last: Option<LockError>,
    ) -> LockError {
        match last {
            // Redlock: the node-by-node story says more than "timeout".
            Some(quorum @ LockError::QuorumNotReached { .. }) => quorum,
            other => LockError::Timeout {
                kind: self.protocol.kind(),
                key: self.protocol.key().to_owned(),
                limit,
                attempts,
                last_error: other.and_then(|e| match e {
                    LockError::Backend { source, .. } => Some(source),
                    _ => None,
                }),
            },
        }
    }

    fn backend_error(&self, operation: &'static str, source: BackendError) -> LockError {
        LockError::Backend {
            kind: self.protocol.kind(),
            key: self.protocol.key().to_owned(),
            operation,
            source,
        }
    }
}

/// Whether acquire waits (retrying) or makes a single attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Wait,
    Try,
}

/// Releases in the background if an attempt that may have succeeded is
/// abandoned because the acquire future was dropped mid-call, or (random
/// identifiers) because the call failed and the next attempt uses a new
/// identifier. It carries the fixed-identifier claim along, so the same
/// identifier is not reused before that release is done.
struct PendingAttempt<'a> {
    core: &'a Arc<DynCore>,
    id: &'a str,
    claim: &'a mut FixedIdClaim,
    armed: bool,
}

impl Drop for PendingAttempt<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (core, id, claim) = (self.core.clone(), self.id.to_owned(), self.claim.take());
        if let Ok(driver) = driver() {
            driver.spawn(Box::pin(async move {
                let _ = core
                    .protocol
                    .release(&id, core.options.command_timeout)
                    .await;
                drop(claim);
            }));
        }
    }
}

/// Owns the lock instance's fixed identifier while an acquire (or its
/// background clean-up) uses it; frees it when dropped without a hold.
struct FixedIdClaim(Option<Arc<DynCore>>);

impl FixedIdClaim {
    fn take(&mut self) -> FixedIdClaim {
        FixedIdClaim(self.0.take())
    }

    /// Hands the claim to a new hold: `true` if there was one.
    fn keep(mut self) -> bool {
        self.0.take().is_some()
    }
}

impl Drop for FixedIdClaim {
    fn drop(&mut self) {
        if let Some(core) = self.0.take() {
            core.release_fixed_id();
        }
    }
}

pub(crate) async fn acquire(
    core: &Arc<DynCore>,
    mode: Mode,
) -> Result<Option<LockGuard>, LockError> {
    let options = &core.options;
    let fixed = matches!(options.identity, Identity::Fixed(_));
    let mut claim = match &options.identity {
        Identity::Fixed(id) => {
            if core.fixed_id_in_use.swap(true, Ordering::AcqRel) {
                return Err(LockError::AlreadyHeld {
                    kind: core.protocol.kind(),
                    key: core.protocol.key().to_owned(),
                    identifier: id.clone(),
                });
            }
            FixedIdClaim(Some(core.clone()))
        }
        Identity::Random { .. } => FixedIdClaim(None),
    };
    driver().map_err(|msg| LockError::Background {
        message: msg.to_owned(),
    })?;
    let mut id = options.identity.make();
    let ttl = options.lock_timeout_ms;
    let bound = options.command_timeout;

    if core.external_pending.load(Ordering::Acquire) {
        let started = Instant::now();
        let refreshed = core
            .protocol
            .refresh(&id, ttl, started, bound)
            .await
            .map_err(|e| core.backend_error("acquire", e))?;
        return match refreshed {
            Refreshed::Extended { valid_until } => {
                core.external_pending.store(false, Ordering::Release);
                let claimed = claim.keep();
                Ok(Some(LockGuard::new(Hold::start(
                    core.clone(),
                    id,
                    started,
                    valid_until,
                    claimed,
                ))))
            }
            Refreshed::Lost(_) if mode == Mode::Try => Ok(None),
            Refreshed::Lost(_) => Err(core.timeout_error(AcquireLimit::Attempts(1), 1, None)),
        };
    }

    let start = Instant::now();
    let deadline = start.checked_add(options.acquire_timeout);
    let mut attempts: u32 = 0;
    loop {
        attempts = attempts.saturating_add(1);
        let started = Instant::now();
        let mut pending = PendingAttempt {
            core,
            id: &id,
            claim: &mut claim,
            armed: true,
        };
        let outcome = core.protocol.acquire(&id, ttl, started, bound).await;
        let last = match outcome {
            Ok(Some(valid_until)) => {
                pending.armed = false;
                drop(pending);
                let claimed = claim.keep();
                let hold = Hold::start(core.clone(), id, started, valid_until, claimed);
                return Ok(Some(LockGuard::new(hold)));
            }
            Ok(None) => {
                pending.armed = false;
                None
            }
            // The failed call may still have taken the lock. A fixed
            // identifier is cleaned up before it is used again; a random one
            // is cleaned up in the background and replaced.
            Err(e) if is_retryable(&e) => {
                if fixed {
                    pending.armed = false;
                    drop(pending);
                    let _ = core.protocol.release(&id, bound).await;
                } else {
                    drop(pending);
                    id = options.identity.make();
                }
                Some(e)
            }
            Err(e) => {
                pending.armed = false;
                return Err(e);
            }
        };

        if mode == Mode::Try {
            return match last {
                None => Ok(None),
                Some(e) => Err(e),
            };
        }
        if options.max_attempts.is_some_and(|max| attempts >= max) {
            let max = options.max_attempts.unwrap_or(attempts);
            return Err(core.timeout_error(AcquireLimit::Attempts(max), attempts, last));
        }
        let now = Instant::now();
        let wake = now.checked_add(options.retry_interval);
        match deadline {
            Some(deadline) if now >= deadline => {
                let limit = AcquireLimit::Timeout(options.acquire_timeout);
                return Err(core.timeout_error(limit, attempts, last));
            }
            // Never sleep past the deadline: the last attempt happens at it.
            Some(deadline) => sleep_until(wake.map_or(deadline, |w| w.min(deadline))).await,
            None => sleep_until(wake.unwrap_or_else(crate::time::far_future)).await,
        }
    }
}

fn is_retryable(err: &LockError) -> bool {
    match err {
        LockError::Backend { source, .. } => source.is_retryable(),
        LockError::QuorumNotReached { .. } => true,
        _ => false,
    }
}

/// Acquires, waiting as the options allow.
pub(crate) async fn acquire_wait(core: &Arc<DynCore>) -> Result<LockGuard, LockError> {
    match acquire(core, Mode::Wait).await? {
        Some(guard) => Ok(guard),
        // Mode::Wait ends with a guard or an error; this is its last attempt's
        // "busy" seen as the limit it is.
        None => Err(core.timeout_error(AcquireLimit::Attempts(1), 1, None)),
    }
}

/// Runs `work` while holding the lock; drops it with the loss error if the
/// lock is lost first. Releases at the end.
pub(crate) async fn with_lock<F, Fut, T>(core: &Arc<DynCore>, work: F) -> Result<T, LockError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    let guard = acquire_wait(core).await?;
    let outcome = {
        let work = pin!(work());
        let lost = pin!(guard.lost());
        match select(work, lost).await {
            Either::Left((value, _)) => Ok(value),
            Either::Right((lost, _)) => Err(lost),
        }
    };
    match outcome {
        Ok(value) => guard.release().await.map(|()| value),
        Err(lost) => {
            let _ = guard.release().await;
            Err(lost)
        }
    }
}
