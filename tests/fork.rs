//! Issue 7.8: a child made by `fork()` inherits none of the parent's
//! threads; its locks must still work (redsem restarts its background
//! threads when the process id changes), not hang past their timeouts.

use std::time::{Duration, Instant};

use redsem_core::{LockOptions, Mutex};
use redsem_mock::MockBackend;

fn options(acquire: Duration) -> LockOptions {
    LockOptions::builder()
        .lock_timeout(Duration::from_millis(200))
        .refresh_interval(Duration::from_millis(50))
        .acquire_timeout(acquire)
        .build()
        .unwrap()
}

/// What the child checks: a busy lock times out on time, and a new hold is
/// refreshed past its lock timeout.
fn child(redis: MockBackend) -> bool {
    futures::executor::block_on(async {
        let busy =
            Mutex::with_options(redis.clone(), "parent", options(Duration::from_millis(100)));
        let started = Instant::now();
        let timed_out = busy.unwrap().acquire().await.is_err_and(|e| e.is_timeout());
        if !timed_out || started.elapsed() > Duration::from_secs(2) {
            return false;
        }
        let Ok(guard) = Mutex::with_options(redis, "child", options(Duration::ZERO))
            .unwrap()
            .acquire()
            .await
        else {
            return false;
        };
        std::thread::sleep(Duration::from_millis(600)); // three lock timeouts
        guard.is_acquired() && guard.release().await.is_ok()
    })
}

#[test]
fn a_forked_child_gets_working_locks() {
    let redis = MockBackend::new();
    // the parent's background thread runs (a refreshed hold)
    let parent = futures::executor::block_on(
        Mutex::with_options(redis.clone(), "parent", options(Duration::ZERO))
            .unwrap()
            .acquire(),
    )
    .unwrap();

    // SAFETY: the child only runs this test's code and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = std::panic::catch_unwind(|| child(redis)).unwrap_or(false);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child without blocking.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: kills and reaps the child we started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the child's locks hung (no background thread after fork)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status}"
    );
    assert!(parent.is_acquired());
    futures::executor::block_on(parent.release()).unwrap();
}
