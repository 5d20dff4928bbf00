//! `redsem run`: take the lock, run the command, release.

use std::io::{IsTerminal, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use redsem_core::{
    quorum, LockError, LockGuard, LockOptions, MultiSemaphore, Mutex, RedlockMultiSemaphore,
    RedlockMutex, RedlockSemaphore, Semaphore,
};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::{code, RunArgs};
use crate::duration::show;
use crate::node::Node;
use crate::status::{holders, show_ttl};
use crate::Output;

/// Pause between acquire attempts while the lock is busy (a CLI may wait
/// for hours; redsem's library default of 10 ms is meant for short waits).
const RETRY_INTERVAL: Duration = Duration::from_millis(100);

/// How often the status line is redrawn.
const STATUS_EVERY: Duration = Duration::from_millis(250);

/// Any of the six lock kinds, on [`Node`]s.
enum AnyLock {
    Mutex(Mutex<Node>),
    Semaphore(Semaphore<Node>),
    Multi(MultiSemaphore<Node>),
    RedlockMutex(RedlockMutex<Node>),
    RedlockSemaphore(RedlockSemaphore<Node>),
    RedlockMulti(RedlockMultiSemaphore<Node>),
}

impl AnyLock {
    fn new(
        mut nodes: Vec<Node>,
        key: &str,
        limit: Option<u32>,
        permits: Option<u32>,
        options: LockOptions,
    ) -> Result<Self, LockError> {
        if nodes.len() == 1 {
            let node = nodes.remove(0);
            return Ok(match (limit, permits) {
                (None, _) => AnyLock::Mutex(Mutex::with_options(node, key, options)?),
                (Some(l), None) => {
                    AnyLock::Semaphore(Semaphore::with_options(node, key, l, options)?)
                }
                (Some(l), Some(p)) => {
                    AnyLock::Multi(MultiSemaphore::with_options(node, key, l, p, options)?)
                }
            });
        }
        Ok(match (limit, permits) {
            (None, _) => AnyLock::RedlockMutex(RedlockMutex::with_options(nodes, key, options)?),
            (Some(l), None) => {
                AnyLock::RedlockSemaphore(RedlockSemaphore::with_options(nodes, key, l, options)?)
            }
            (Some(l), Some(p)) => AnyLock::RedlockMulti(RedlockMultiSemaphore::with_options(
                nodes, key, l, p, options,
            )?),
        })
    }

    async fn acquire(&self) -> Result<LockGuard, LockError> {
        match self {
            AnyLock::Mutex(l) => l.acquire().await,
            AnyLock::Semaphore(l) => l.acquire().await,
            AnyLock::Multi(l) => l.acquire().await,
            AnyLock::RedlockMutex(l) => l.acquire().await,
            AnyLock::RedlockSemaphore(l) => l.acquire().await,
            AnyLock::RedlockMulti(l) => l.acquire().await,
        }
    }
}

/// 128 + the signal's number, as shells report a death by signal.
fn signal_status(sig: Signal) -> u8 {
    128u8.saturating_add(u8::try_from(sig as i32).unwrap_or(127))
}

/// The exit status to pass on for the command's `status`.
fn exit_code(status: ExitStatus) -> u8 {
    if let Some(c) = status.code() {
        return u8::try_from(c & 0xff).unwrap_or(code::FAILURE);
    }
    match status.signal() {
        Some(sig) => u8::try_from(128 + sig).unwrap_or(code::FAILURE),
        None => code::FAILURE,
    }
}

/// Sends `sig` to process group `pgid`; a group that is gone is fine.
fn signal_group(pgid: Pid, sig: Signal, out: Output) {
    match killpg(pgid, sig) {
        Ok(()) => out.info(&format!("sent {sig} to process group {pgid}")),
        Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => out.warn(&format!(
            "could not send {sig} to process group {pgid}: {e}"
        )),
    }
}

/// The signals redsem forwards to the command.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal received.
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal::SIGINT,
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.hup.recv() => Signal::SIGHUP,
        }
    }
}

/// Erases the status line.
const CLEAR_LINE: &str = "\r\x1b[2K";

/// Redraws the status line until aborted.
async fn status_line(
    node: Node,
    key: String,
    limit: Option<u32>,
    lock_timeout: Duration,
    started: Instant,
) {
    let mut tick = tokio::time::interval(STATUS_EVERY);
    loop {
        tick.tick().await;
        let read =
            tokio::time::timeout(STATUS_EVERY, holders(&node, &key, limit, lock_timeout)).await;
        let waited = show(started.elapsed());
        let who = match read {
            Ok(Ok(list)) if list.is_empty() => "free, trying".to_owned(),
            Ok(Ok(list)) => {
                let first = &list[0];
                let mut id: String = first.identifier.chars().take(8).collect();
                if first.identifier.chars().nth(8).is_some() {
                    id.push('…');
                }
                let more = if list.len() > 1 {
                    format!(" and {} more", list.len() - 1)
                } else {
                    String::new()
                };
                let ttl = list.iter().filter_map(|h| h.ttl_ms).min();
                format!("held by {id}{more}, expires in {}", show_ttl(ttl))
            }
            Ok(Err(_)) | Err(_) => "no answer from Redis".to_owned(),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "{CLEAR_LINE}redsem: waiting for {key}: {who}; waited {waited}"
        );
        let _ = err.flush();
    }
}

/// `redsem run`.
pub(crate) async fn run(args: RunArgs, urls: Vec<String>, out: Output) -> u8 {
    let key = args.key.clone();
    if let (Some(limit), Some(permits)) = (args.lock.limit, args.permits) {
        if permits > limit {
            eprintln!(
                "redsem: error: --permits {permits} exceeds --limit {limit}: it could never be acquired"
            );
            return code::USAGE;
        }
    }
    let nodes: Vec<Node> = urls.iter().map(|u| Node::new(u)).collect();

    let options = LockOptions::builder()
        .lock_timeout(args.lock.lock_timeout)
        .retry_interval(RETRY_INTERVAL)
        .acquire_timeout(args.wait.unwrap_or(Duration::MAX));
    let options = match options.build() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("redsem: {e}");
            return code::USAGE;
        }
    };

    // From here on SIGINT/SIGTERM/SIGHUP are ours to handle (before the
    // command runs: give up waiting; while it runs: forward them).
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("redsem: cannot install signal handlers: {e}");
            return code::FAILURE;
        }
    };

    // Connect first, so that an unreachable Redis is reported at once.
    let connecting: Vec<_> = nodes
        .iter()
        .map(|n| {
            let n = n.clone();
            tokio::spawn(async move { n.backend().await.map(|_| ()) })
        })
        .collect();
    let mut failed = Vec::new();
    // The status line reads from the first node that answered.
    let mut status_node = None;
    for (node, task) in nodes.iter().zip(connecting) {
        let result = match task.await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => {
                out.info(&format!("connected to {}", node.shown_url()));
                status_node.get_or_insert_with(|| node.clone());
            }
            Err(e) => failed.push(format!("cannot reach Redis at {}: {e}", node.shown_url())),
        }
    }
    let needed = if nodes.len() == 1 {
        1
    } else {
        quorum(nodes.len())
    };
    if nodes.len() - failed.len() < needed {
        for f in &failed {
            eprintln!("redsem: {f}");
        }
        if nodes.len() > 1 {
            eprintln!(
                "redsem: Redlock needs {needed} of {} nodes, {} reachable",
                nodes.len(),
                nodes.len() - failed.len()
            );
        }
        return code::UNAVAILABLE;
    }
    for f in &failed {
        out.warn(&format!("{f} (going on with the other nodes)"));
    }

    let lock = match AnyLock::new(nodes, &key, args.lock.limit, args.permits, options) {
        Ok(l) => l,
        Err(e @ LockError::InvalidOption { .. }) => {
            eprintln!("redsem: {e}");
            return code::USAGE;
        }
        Err(e) => {
            eprintln!("redsem: {e}");
            return code::FAILURE;
        }
    };

    // Wait for the lock, with a status line on a terminal.
    let started = Instant::now();
    let status_task = match status_node {
        Some(node) if out.status_line && std::io::stderr().is_terminal() => {
            Some(tokio::spawn(status_line(
                node,
                key.clone(),
                args.lock.limit,
                args.lock.lock_timeout,
                started,
            )))
        }
        _ => None,
    };
    let acquired = tokio::select! {
        r = lock.acquire() => Ok(r),
        sig = signals.next() => Err(sig),
    };
    if let Some(task) = status_task {
        task.abort();
        let _ = task.await;
        eprint!("{CLEAR_LINE}");
    }
    let guard = match acquired {
        Err(sig) => {
            out.info(&format!("{sig} while waiting for {key}; giving up"));
            return signal_status(sig);
        }
        Ok(Ok(guard)) => guard,
        Ok(Err(e)) if e.is_unreachable() => {
            eprintln!("redsem: cannot reach Redis: {e}");
            return code::UNAVAILABLE;
        }
        Ok(Err(e)) if e.is_timeout() => {
            if !out.quiet {
                eprintln!(
                    "redsem: lock {key} is busy; gave up after {}",
                    show(started.elapsed())
                );
            }
            out.info(&e.to_string());
            return code::BUSY;
        }
        Ok(Err(e @ LockError::InvalidOption { .. })) => {
            eprintln!("redsem: {e}");
            return code::USAGE;
        }
        Ok(Err(e)) => {
            eprintln!("redsem: {e}");
            return code::FAILURE;
        }
    };
    out.info(&format!(
        "acquired {} as {} after {}",
        guard.key(),
        guard.identifier(),
        show(started.elapsed())
    ));

    // Run the command in its own process group.
    let mut command = tokio::process::Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env("REDSEM_KEY", &key)
        .env("REDSEM_IDENTIFIER", guard.identifier())
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "redsem: cannot run {}: {e}",
                args.command[0].to_string_lossy()
            );
            release(guard, &out).await;
            return if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
        }
    };
    let pgid = Pid::from_raw(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(0),
    );

    enum Outcome {
        Exited(std::io::Result<ExitStatus>),
        Lost(LockError),
    }
    let outcome = {
        let lost = guard.lost();
        tokio::pin!(lost);
        loop {
            tokio::select! {
                status = child.wait() => break Outcome::Exited(status),
                err = &mut lost => break Outcome::Lost(err),
                sig = signals.next() => {
                    out.info(&format!("forwarding {sig} to the command"));
                    signal_group(pgid, sig, out);
                }
            }
        }
    };
    match outcome {
        Outcome::Exited(status) => {
            let code = match status {
                Ok(status) => {
                    out.info(&format!("command exited: {status}"));
                    exit_code(status)
                }
                Err(e) => {
                    eprintln!("redsem: waiting for the command failed: {e}");
                    code::FAILURE
                }
            };
            release(guard, &out).await;
            code
        }
        Outcome::Lost(err) => {
            eprintln!(
                "redsem: {err}; stopping the command (SIGTERM, SIGKILL after {})",
                show(args.kill_after)
            );
            signal_group(pgid, Signal::SIGTERM, out);
            let deadline = tokio::time::sleep(args.kill_after);
            tokio::pin!(deadline);
            let exited = loop {
                tokio::select! {
                    status = child.wait() => break Some(status),
                    () = &mut deadline => break None,
                    sig = signals.next() => signal_group(pgid, sig, out),
                }
            };
            if exited.is_none() {
                out.warn(&format!(
                    "the command ignored SIGTERM for {}; sending SIGKILL",
                    show(args.kill_after)
                ));
                signal_group(pgid, Signal::SIGKILL, out);
                let _ = child.wait().await;
            }
            drop(guard);
            code::LOST
        }
    }
}

/// Releases `guard`, warning when that fails.
async fn release(guard: LockGuard, out: &Output) {
    let key = guard.key().to_owned();
    match guard.release().await {
        Ok(()) => out.info(&format!("released {key}")),
        Err(e) if e.is_lost() => out.warn(&format!(
            "the lock had been lost before the command ended, so it may not have run alone: {e}"
        )),
        Err(e) => out.warn(&format!(
            "could not release {key} ({e}); it expires after the lock timeout"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exit_statuses_pass_through() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
        assert_eq!(signal_status(Signal::SIGINT), 130);
    }
}
