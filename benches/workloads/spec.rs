//! The workload table of WORKLOADS.md and the locks each one uses.

use std::time::Duration;

use redsem_core::{
    LockError, LockGuard, LockOptions, MultiSemaphore, Mutex, RedlockMutex, Semaphore,
};

use crate::backend::Backend;

/// Lock TTL of every workload (redis-semaphore's default `lockTimeout`).
pub const LOCK_TTL: Duration = Duration::from_secs(10);
/// Acquire timeout wherever a workload waits.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Kind {
    Mutex,
    Semaphore { limit: u32 },
    Multi { limit: u32, permits: u32 },
    ManyKeys,
    Redlock,
}

/// How the tasks run.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Mode {
    /// The common task loop.
    Cycle,
    /// mutex-handoff: 2 tasks alternate strictly.
    Handoff,
    /// idle-waiters: 1 holder for the whole phase, waiters that time out.
    Idle,
}

#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub servers: usize,
    pub tasks: usize,
    pub hold: Duration,
    pub think: Duration,
    pub kind: Kind,
    pub mode: Mode,
}

impl Spec {
    /// Holders allowed at once (permits for the multisemaphore).
    pub fn limit(&self) -> usize {
        match self.kind {
            Kind::Semaphore { limit } | Kind::Multi { limit, .. } => limit as usize,
            _ => 1,
        }
    }

    /// Contended workloads report waits; solo and many-keys cycle latency.
    pub fn contended(&self) -> bool {
        !self.hold.is_zero()
    }
}

pub const NAMES: &str = "mutex-solo|mutex-contended|semaphore-contended|multisemaphore-contended|many-keys|redlock-mutex-solo|redlock-mutex-contended|mutex-handoff|idle-waiters";

pub fn spec(workload: &str) -> Option<Spec> {
    let ms = Duration::from_millis;
    let (servers, tasks, hold, think, kind, mode) = match workload {
        "mutex-solo" => (1, 1, ms(0), ms(0), Kind::Mutex, Mode::Cycle),
        "mutex-contended" => (1, 16, ms(1), ms(1), Kind::Mutex, Mode::Cycle),
        "semaphore-contended" => (
            1,
            16,
            ms(1),
            ms(1),
            Kind::Semaphore { limit: 4 },
            Mode::Cycle,
        ),
        "multisemaphore-contended" => {
            let kind = Kind::Multi {
                limit: 8,
                permits: 2,
            };
            (1, 16, ms(1), ms(1), kind, Mode::Cycle)
        }
        "many-keys" => (1, 256, ms(0), ms(0), Kind::ManyKeys, Mode::Cycle),
        "redlock-mutex-solo" => (3, 1, ms(0), ms(0), Kind::Redlock, Mode::Cycle),
        "redlock-mutex-contended" => (3, 16, ms(1), ms(1), Kind::Redlock, Mode::Cycle),
        "mutex-handoff" => (1, 2, ms(5), ms(0), Kind::Mutex, Mode::Handoff),
        "idle-waiters" => (1, 1, ms(0), ms(0), Kind::Mutex, Mode::Idle),
        _ => return None,
    };
    Some(Spec {
        servers,
        tasks,
        hold,
        think,
        kind,
        mode,
    })
}

/// One task's lock object, reused for all its cycles.
pub enum Lock {
    Mutex(Mutex<Backend>),
    Semaphore(Semaphore<Backend>),
    Multi(MultiSemaphore<Backend>),
    Redlock(RedlockMutex<Backend>),
}

impl Lock {
    pub async fn acquire(&self) -> Result<LockGuard, LockError> {
        match self {
            Lock::Mutex(l) => l.acquire().await,
            Lock::Semaphore(l) => l.acquire().await,
            Lock::Multi(l) => l.acquire().await,
            Lock::Redlock(l) => l.acquire().await,
        }
    }
}

/// Default options except the two the workloads fix.
pub fn options(lock_timeout: Duration, acquire_timeout: Duration) -> LockOptions {
    LockOptions::builder()
        .lock_timeout(lock_timeout)
        .acquire_timeout(acquire_timeout)
        .build()
        .expect("valid options")
}

/// The options in force, for the `options` key.
pub fn describe(o: &LockOptions) -> String {
    format!(
        "lock_timeout {:?}, acquire_timeout {:?}, retry_interval {:?} (x0.5-1.5 jitter), refresh_interval {}, command_timeout {:?}, random identifiers; others default",
        o.lock_timeout(),
        o.acquire_timeout(),
        o.retry_interval(),
        o.refresh_interval().map_or_else(|| "off".into(), |d| format!("{d:.3?}")),
        o.command_timeout(),
    )
}

/// The key a task locks (without redsem's `mutex:`/`semaphore:` prefix).
pub fn key(spec: &Spec, prefix: &str, workload: &str, task: usize) -> String {
    match spec.kind {
        Kind::ManyKeys => format!("{prefix}:many-keys:{task}"),
        _ => format!("{prefix}:{workload}"),
    }
}

pub fn make_lock(spec: &Spec, backends: &[Backend], key: String, options: LockOptions) -> Lock {
    let b = backends[0].clone();
    let built = match spec.kind {
        Kind::Mutex | Kind::ManyKeys => Mutex::with_options(b, key, options).map(Lock::Mutex),
        Kind::Semaphore { limit } => {
            Semaphore::with_options(b, key, limit, options).map(Lock::Semaphore)
        }
        Kind::Multi { limit, permits } => {
            MultiSemaphore::with_options(b, key, limit, permits, options).map(Lock::Multi)
        }
        Kind::Redlock => {
            RedlockMutex::with_options(backends.to_vec(), key, options).map(Lock::Redlock)
        }
    };
    built.expect("valid lock")
}
