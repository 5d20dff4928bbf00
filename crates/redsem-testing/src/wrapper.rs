//! Runs one `redis-server` process under a tiny `sh` wrapper that kills it as
//! soon as the test process goes away, for whatever reason.
//!
//! Why a wrapper: `Drop` does not run when a test binary is SIGKILLed, aborts,
//! or keeps the server in a `static`. Without unsafe code (no `prctl`), the
//! portable way to notice the parent's death is a pipe: the wrapper's stdin is
//! a pipe whose only write end lives in the test process, and a watcher in the
//! wrapper blocks reading it. The kernel closes that end when the test process
//! exits in any way, the read returns, and the watcher sends SIGKILL to the
//! server. Our own cleanup uses the very same path (close the pipe).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::TestingError;
use crate::util::POLL_INTERVAL;

/// The wrapper. Arguments: `$1` = log file, then the server binary and its args.
///
/// - SIGHUP is ignored: when a process group holding a SIGSTOPped (paused)
///   server is orphaned (e.g. `timeout cargo test` exits), the kernel sends the
///   group SIGHUP + SIGCONT; redis-server ignores SIGHUP, so a wrapper dying of
///   it would leave the server running forever;
/// - the pipe moves to fd 3 and stdin becomes /dev/null, so the server never
///   holds the pipe (it gets fd 3 closed as well);
/// - it prints `pid <server pid>`, then a watcher subshell blocks on the pipe
///   and SIGKILLs the server when the pipe closes;
/// - the main shell reaps the server, stops the watcher (so it can never signal
///   a recycled pid) and prints `exit <status>`.
const SCRIPT: &str = r#"trap '' HUP
log=$1; shift
exec 3<&0 </dev/null
"$@" >>"$log" 2>&1 3<&- &
pid=$!
echo "pid $pid"
( read -r line <&3; kill -9 "$pid" 2>/dev/null ) &
watcher=$!
exec 3<&-
wait "$pid"
status=$?
kill "$watcher" 2>/dev/null
echo "exit $status"
"#;

/// How long to wait for the wrapper to report the server pid.
const PID_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for SIGSTOP/SIGCONT to take effect.
const STATE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the wrapper to exit after the server was killed.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the reader thread learned from the wrapper's stdout.
#[derive(Debug, Default)]
struct Reported {
    pid: Option<u32>,
    /// `Some` once the server exited (the wrapper's `exit <status>` line).
    exit: Option<String>,
    /// The wrapper's stdout closed (the wrapper is gone or going).
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    reported: Mutex<Reported>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Reported> {
        self.reported.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running (or just-exited) server together with its wrapper.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    wrapper: Child,
    /// Write end of the wrapper's stdin. Dropping it makes the wrapper SIGKILL
    /// the server; nothing is ever written to it.
    control: Option<ChildStdin>,
    pid: u32,
    shared: Arc<Shared>,
}

impl ServerProcess {
    /// Starts `binary args...` under the wrapper, appending its output to `log`.
    pub(crate) fn spawn(binary: &Path, args: &[String], log: &Path) -> Result<Self, TestingError> {
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("redsem-testing-wrapper")
            .arg(log)
            .arg(binary)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| TestingError::io("spawning the sh wrapper for redis-server", e))?;
        let control = wrapper.stdin.take();
        let stdout = wrapper.stdout.take();
        let shared = Arc::new(Shared::default());

        let reader_shared = Arc::clone(&shared);
        let reader = stdout.map(|stdout| {
            thread::Builder::new()
                .name("redsem-testing-wrapper".into())
                .spawn(move || read_reports(stdout, &reader_shared))
        });
        if !matches!(reader, Some(Ok(_))) || control.is_none() {
            // Without the pipe or the reader we cannot manage the server safely.
            drop(control);
            let _ = wrapper.kill();
            let _ = wrapper.wait();
            return Err(TestingError::io(
                "setting up the redis-server wrapper",
                std::io::Error::other("missing wrapper pipe or reader thread"),
            ));
        }

        let deadline = Instant::now() + PID_TIMEOUT;
        let mut reported = shared.lock();
        let pid = loop {
            if let Some(pid) = reported.pid {
                break Some(pid);
            }
            let now = Instant::now();
            if reported.closed || now >= deadline {
                break None;
            }
            reported = shared
                .changed
                .wait_timeout(reported, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        drop(reported);
        let mut process = ServerProcess {
            wrapper,
            control,
            pid: pid.unwrap_or(0),
            shared,
        };
        if pid.is_none() {
            process.shutdown();
            return Err(TestingError::Timeout {
                what: "the sh wrapper to report the redis-server pid".into(),
                after: PID_TIMEOUT,
            });
        }
        Ok(process)
    }

    /// The pid of the redis-server process itself (not of the wrapper).
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some(status)` once the server has exited (it has then also been reaped).
    pub(crate) fn exit_status(&self) -> Option<String> {
        let reported = self.shared.lock();
        match (&reported.exit, reported.closed) {
            (Some(status), _) => Some(status.clone()),
            (None, true) => Some("unknown (wrapper gone)".into()),
            (None, false) => None,
        }
    }

    /// Sends `signal` (a name such as `STOP`) to the server, and only to it.
    ///
    /// Refuses once the server has exited: its pid may then belong to an
    /// unrelated process. We use the shell's `kill` builtin because `sh` is
    /// needed anyway, while a `kill` binary is not installed everywhere.
    fn signal(&self, signal: &str) -> Result<(), TestingError> {
        if let Some(status) = self.exit_status() {
            return Err(TestingError::NotRunning(format!(
                "cannot send SIG{signal} to pid {}: it exited with status {status}",
                self.pid
            )));
        }
        let output = Command::new("sh")
            .args(["-c", r#"kill -s "$1" "$2""#, "sh", signal])
            .arg(self.pid.to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| TestingError::io(format!("running `kill -s {signal}`"), e))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(TestingError::NotRunning(format!(
                "`kill -s {signal} {}` failed: {}",
                self.pid,
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    /// Sends SIGSTOP or SIGCONT and waits (bounded) until the server's state
    /// reflects it. Signal delivery is asynchronous, and a multi-threaded
    /// process only counts as stopped once every thread is, so without the wait
    /// a command sent right after `pause()` could still be answered.
    pub(crate) fn set_stopped(&self, stopped: bool) -> Result<(), TestingError> {
        self.signal(if stopped { "STOP" } else { "CONT" })?;
        let deadline = Instant::now() + STATE_TIMEOUT;
        loop {
            match process_stopped(self.pid) {
                // Unknown (no /proc and no `ps`): the signal was sent; that has to do.
                None => return Ok(()),
                Some(now) if now == stopped => return Ok(()),
                Some(_) if Instant::now() >= deadline => {
                    return Err(TestingError::Timeout {
                        what: format!(
                            "redis-server {} to become {}",
                            self.pid,
                            if stopped { "stopped" } else { "runnable" }
                        ),
                        after: STATE_TIMEOUT,
                    })
                }
                Some(_) => thread::sleep(POLL_INTERVAL / 4),
            }
        }
    }

    /// Kills the server (SIGKILL also ends a SIGSTOPped process) and waits,
    /// bounded, until the wrapper has reaped it and exited. Idempotent.
    pub(crate) fn shutdown(&mut self) {
        if self.exit_status().is_none() && self.pid != 0 {
            let _ = self.signal("KILL");
        }
        // Closing the pipe is the fallback if the direct signal failed.
        drop(self.control.take());
        let deadline = Instant::now() + REAP_TIMEOUT;
        loop {
            match self.wrapper.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL / 4),
                _ => break,
            }
        }
        let _ = self.wrapper.kill();
        let _ = self.wrapper.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Whether `pid` is stopped (state `T`): on Linux all of its threads per
/// `/proc` (the kernel only treats the process as stopped once every thread
/// is), elsewhere per `ps`; `None` if neither can tell.
fn process_stopped(pid: u32) -> Option<bool> {
    // The state follows the command name, which is in parentheses.
    let state_of = |stat: &str| stat.rsplit_once(')')?.1.trim_start().chars().next();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        let mut all_stopped = true;
        for task in tasks.flatten() {
            // A thread that exited meanwhile has no say.
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            all_stopped &= state_of(&stat) == Some('T');
        }
        return Some(all_stopped);
    }
    let output = Command::new("ps")
        .args(["-o", "stat=", "-p"])
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let state = String::from_utf8_lossy(&output.stdout)
        .trim()
        .chars()
        .next()?;
    Some(state == 'T')
}

/// Reader thread: turns the wrapper's `pid N` / `exit S` lines into state.
fn read_reports(stdout: impl std::io::Read, shared: &Shared) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut reported = shared.lock();
        if let Some(pid) = line.strip_prefix("pid ") {
            reported.pid = pid.trim().parse().ok();
        } else if let Some(status) = line.strip_prefix("exit ") {
            reported.exit = Some(status.trim().to_owned());
        }
        drop(reported);
        shared.changed.notify_all();
    }
    shared.lock().closed = true;
    shared.changed.notify_all();
}
