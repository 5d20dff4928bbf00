//! Small helpers: finding programs, choosing ports, temp dirs, bounded waits.

use std::collections::HashSet;
use std::env;
use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::TestingError;

/// Prefix of every temp dir this crate creates (also used by the sweep).
const TEMP_PREFIX: &str = "redsem-testing-";

/// Leftover temp dirs of dead processes are only removed when older than this,
/// so a live process in another PID namespace sharing `/tmp` is left alone.
const SWEEP_MIN_AGE: Duration = Duration::from_secs(600);

/// How often bounded waits poll.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The loopback address every server binds to; tests never touch anything else.
pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Finds `program` on `PATH`, or fails with an error that says how to install it.
pub(crate) fn find_program(
    program: &'static str,
    apt_package: &'static str,
) -> Result<PathBuf, TestingError> {
    let not_found = TestingError::ProgramNotFound {
        program,
        apt_package,
    };
    let Some(path) = env::var_os("PATH") else {
        return Err(not_found);
    };
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
        .ok_or(not_found)
}

/// Ports handed out by this process. A port is never handed out twice, so two
/// tests running in parallel threads cannot race for the same one; races with
/// other processes are handled by retrying the start.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Picks a currently free loopback port (bind to port 0, read it, close).
pub(crate) fn pick_free_port() -> Result<u16, TestingError> {
    for _ in 0..100 {
        let listener = TcpListener::bind(loopback(0))
            .map_err(|e| TestingError::io("binding 127.0.0.1:0 to find a free port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| TestingError::io("reading the port of a probe socket", e))?
            .port();
        drop(listener);
        let mut guard = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    Err(TestingError::Timeout {
        what: "a loopback port not used before by this process".into(),
        after: Duration::ZERO,
    })
}

/// Creates a fresh, private temp dir for one server.
pub(crate) fn make_temp_dir() -> Result<PathBuf, TestingError> {
    static SWEEP: Once = Once::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    SWEEP.call_once(|| sweep_stale_dirs(&env::temp_dir(), SWEEP_MIN_AGE));

    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            env::temp_dir().join(format!("{TEMP_PREFIX}{}-{n}-{nanos:x}", std::process::id()));
        // `create_dir`, not `create_dir_all`: an existing dir is never reused.
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(TestingError::io(
                    format!("creating temp dir {}", dir.display()),
                    e,
                ))
            }
        }
    }
    Err(TestingError::InvalidArgument(
        "could not find an unused temp dir name".into(),
    ))
}

/// Removes temp dirs left behind by test processes that died without
/// unwinding (their servers are already gone: the wrapper kills them).
/// Best effort and Linux-only (it needs `/proc` to tell whether the owner lives).
fn sweep_stale_dirs(base: &Path, min_age: Duration) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TEMP_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let old_enough = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= min_age);
        let owner_alive = Path::new(&format!("/proc/{owner}")).exists();
        if old_enough && !owner_alive && owner != std::process::id() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Waits (bounded) until connecting to `port` is refused, i.e. nothing listens.
pub(crate) fn wait_port_refuses(port: u16, timeout: Duration) -> Result<(), TestingError> {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Ok(()),
            _ if Instant::now() >= deadline => {
                return Err(TestingError::Timeout {
                    what: format!("port {port} to refuse connections"),
                    after: timeout,
                })
            }
            _ => thread::sleep(POLL_INTERVAL),
        }
    }
}

/// The last `lines` lines of a log file (empty if it cannot be read).
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_only_dirs_of_dead_owners() -> Result<(), TestingError> {
        let base = make_temp_dir()?;
        let mine = base.join(format!("{TEMP_PREFIX}{}-0-1", std::process::id()));
        // Far above any pid_max, so no such process exists.
        let dead = base.join(format!("{TEMP_PREFIX}4294967290-0-1"));
        let foreign = base.join("unrelated-dir");
        for dir in [&mine, &dead, &foreign] {
            fs::create_dir(dir).map_err(|e| TestingError::io("creating test dir", e))?;
        }
        sweep_stale_dirs(&base, Duration::ZERO);
        let left = (mine.exists(), dead.exists(), foreign.exists());
        let _ = fs::remove_dir_all(&base);
        // Without /proc (not Linux) the sweep does nothing.
        let swept = Path::new("/proc/self").exists();
        assert_eq!(left, (true, !swept, true));
        Ok(())
    }
}
